/* Runs a fuzz target on files, without libFuzzer: for reproducing a crash under gdb or
 * valgrind with an ordinary build, e.g.
 *   cc -g -Icsrc fuzz/driver.c fuzz/fuzz_marshal.c csrc/*.c -llua5.4 -lcurl -lm -o /tmp/m
 *   valgrind /tmp/m crash-1234 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
  int i;
  for (i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    long n;
    uint8_t *data;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
      perror(argv[i]);
      return 1;
    }
    rewind(f);
    data = malloc((size_t)n + 1);
    if (data == NULL || fread(data, 1, (size_t)n, f) != (size_t)n) return 1;
    fclose(f);
    LLVMFuzzerTestOneInput(data, (size_t)n);
    free(data);
    printf("%s: ok\n", argv[i]);
  }
  return 0;
}
