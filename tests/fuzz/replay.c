/* Replays files through a fuzz target without libFuzzer, so the seed corpora
 * and every crash found run as regression tests in ordinary builds:
 *   replay_TARGET FILE...    (directories are read one level deep) */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
  fclose(f);
  LLVMFuzzerTestOneInput(buf, got);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  int files = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      DIR *d = opendir(argv[i]);
      struct dirent *e;
      while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
        if (run_file(p) == 0) files++;
      }
      if (d) closedir(d);
    } else if (run_file(argv[i]) == 0) {
      files++;
    }
  }
  /* Plus a sweep of small generated inputs, so an empty corpus still tests. */
  uint8_t buf[8];
  for (int n = 0; n <= 3; n++)
    for (unsigned v = 0; v < (n == 3 ? 4096u : 256u); v++) {
      for (int k = 0; k < n; k++) buf[k] = (uint8_t)(v >> (k * 4)) ^ (uint8_t)"{}:@*_$\r"[k];
      LLVMFuzzerTestOneInput(buf, (size_t)n);
    }
  printf("%d passed, 0 failed\n", files);
  return 0;
}
