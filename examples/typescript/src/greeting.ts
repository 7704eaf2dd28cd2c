export function greeting(now: Date): string {
  return `hello from TypeScript on OSv at ${now.toISOString()}`;
}
