/* The floor under the containers collector's cost: opens the files named on stdin (one path per
 * line), then reads each of them from offset 0 with one pread, ROUNDS times over, and prints the
 * CPU time (user + system) of one round in microseconds. Built and run by benches/containers.sh
 * with the files the collector reads every scrape for each benchmark container. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static double cpu_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 50;
    static int fds[1 << 16];
    int n = 0;
    char line[4096], buf[16384];
    while (n < (1 << 16) && fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if ((fds[n] = open(line, O_RDONLY)) < 0) {
            perror(line);
            return 1;
        }
        n++;
    }
    for (int i = 0; i < n; i++) /* warm-up: the first read allocates the kernel's buffers */
        if (pread(fds[i], buf, sizeof buf, 0) < 0) perror("pread");
    double start = cpu_seconds();
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n; i++)
            if (pread(fds[i], buf, sizeof buf, 0) < 0) perror("pread");
    printf("%.1f\n", (cpu_seconds() - start) / rounds * 1e6);
    return 0;
}
