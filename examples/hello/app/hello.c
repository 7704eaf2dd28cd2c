/* A host PIE runs on OSv unchanged: the kernel provides libc. */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  printf("%s from OSv! (argv[1] = %s)\n", getenv("GREETING"), argc > 1 ? argv[1] : "");
  FILE *f = argc > 1 ? fopen(argv[1], "r") : NULL;
  char line[256];
  while (f && fgets(line, sizeof line, f)) fputs(line, stdout);
  return 0;
}
