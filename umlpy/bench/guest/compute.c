/* Compute: SHA-256 of 64 MiB held in memory, per round; no syscalls in the
 * timed loop, so a sandbox that runs guest code natively should score 1.0.
 * The digest is printed so the work cannot be optimised away and so runs
 * can be checked against `sha256sum` of the same bytes. */
#include "bench.h"
#include <string.h>

#define DATA_BYTES (64u << 20)

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

/* len is a multiple of 64 here; the padding block is built at the end. */
static void sha256(const unsigned char *data, uint64_t len, uint32_t h[8])
{
    static const uint32_t init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    unsigned char pad[64] = {0x80};
    memcpy(h, init, sizeof init);
    for (uint64_t off = 0; off < len; off += 64)
        block(h, data + off);
    for (int i = 0; i < 8; i++)
        pad[56 + i] = (unsigned char)((len * 8) >> (56 - 8 * i));
    block(h, pad);
}

int main(int argc, char **argv)
{
    long rounds = bench_iters(argc, argv, 3);
    unsigned char *data = malloc(DATA_BYTES);
    uint32_t h[8];
    if (!data)
        return 1;
    for (uint32_t i = 0; i < DATA_BYTES; i++)
        data[i] = (unsigned char)(i * 2654435761u >> 24);
    uint64_t t0 = bench_now_ns();
    for (long r = 0; r < rounds; r++)
        sha256(data, DATA_BYTES, h);
    uint64_t t1 = bench_now_ns();
    printf("sha256=");
    for (int i = 0; i < 8; i++)
        printf("%08x", h[i]);
    printf("\n");
    bench_report("compute", rounds, t1 - t0);
    free(data);
    return 0;
}
