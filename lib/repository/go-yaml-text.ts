// Scalars as Capstan's YAML writer (go-yaml v2's Marshal) prints them, so the index.yaml and
// package descriptors we write read the same as Capstan's: plain when the text reads back as
// the same string, double-quoted when it would read as a number, bool, null or time, single-
// quoted when the plain form is not allowed (indicators, `: `, ` #`, edge spaces).

/** How go-yaml v2 resolves a plain scalar: anything but 'str' must be quoted to stay a string. */
function resolvesToNonString(s: string): boolean {
  if (/^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/.test(s)) return true;
  if (/^(|~|null|Null|NULL)$/.test(s)) return true;
  if (/^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$/.test(s)) return true;
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(s)) return true; // ints and floats
  if (/^[-+]?0(x[0-9a-fA-F_]+|o[0-7_]+|b[01_]+|[0-7_]+)$/i.test(s)) return true; // Go ParseInt base 0
  if (/^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$/.test(s)) return true; // base-60 floats
  // Timestamps: 2006-1-2, 2006-1-2 15:4:5[.frac], 2006-1-2T15:4:5[.frac]Z07:00.
  if (/^\d{4}-\d{1,2}-\d{1,2}([Tt]\d{1,2}:\d{1,2}:\d{1,2}(\.\d+)?(Z|[-+]\d{2}:\d{2})| \d{1,2}:\d{1,2}:\d{1,2}(\.\d+)?)?$/.test(s)) return true;
  return false;
}

/** Whether go-yaml's emitter may print `s` as a plain scalar in block context. */
function plainAllowed(s: string): boolean {
  if (s === '' || /^\s|\s$/.test(s) || /[\n\r\t]/.test(s)) return false;
  if (/^[#,[\]{}&*!|>'"%@`]/.test(s)) return false;
  if (/^[-?:](\s|$)/.test(s)) return false;
  if (s.includes(': ') || s.endsWith(':') || s.includes(' #')) return false;
  return /^[\x20-\x7e\u00a0-\uffff]*$/.test(s);
}

export function goYamlScalar(s: string): string {
  if (resolvesToNonString(s)) return JSON.stringify(s);
  if (plainAllowed(s)) return s;
  return `'${s.replace(/'/g, "''")}'`;
}
