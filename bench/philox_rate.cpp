// Philox4x32-10 words per second on one thread, through the dropout loops' own code (bench/philox_rate.py
// builds it once per SIMD level with the extension's flags and runs it). Two measures, interleaved round by
// round, over a tile of kTileWords words that stays in L1, as dropout_loop.cpp draws them:
//   generate  philox_words: the dropout stream's words, stored in block order (dropout_lanes.h)
//   decide    the same plus the decisions: each word compared with the threshold and packed as mask bits
//             (compare_bits, vec.h), the work of a mask-only call without threads, Python or memory traffic
// Prints one JSON object: the median rate of each over the rounds, in words per second, and a checksum of
// the words and decisions themselves (checksum()), which bench/philox_rate.py compares across levels.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cpu/vec.h"
#include "cpu/dropout_lanes.h"

namespace {

using namespace rdf::cpu::RDF_ISA;

constexpr int64_t kTileWords = 256;  // dropout_loop.cpp's kTile
constexpr int64_t kTileBlocks = kTileWords / 4;

// noipa: each call is one tile, compiled as in the loops, where the block count is not a constant known to
// the compiler; the result is read by the caller so nothing is dropped.
__attribute__((noipa)) uint32_t generate(uint64_t first_block, int64_t n_blocks, uint64_t seed, uint32_t* words) {
  philox_words(first_block, n_blocks, seed, words);
  return words[first_block % kTileWords];
}

__attribute__((noipa)) uint32_t decide(uint64_t first_block, int64_t n_blocks, uint64_t seed, vu32 t, uint32_t* words,
                                       uint8_t* bits) {
  philox_words(first_block, n_blocks, seed, words);
  // 16 decisions at a time, as dropout_loop.cpp's group packs them: 16 / kLanes comparisons, two bytes.
  for (int64_t j = 0; j < 4 * n_blocks; j += 16) {
    uint32_t b = 0;
    for (int v = 0; v < 16 / kLanes; ++v) b |= compare_bits(load_vec<vu32>(words + j + v * kLanes), t) << (v * kLanes);
    bits[j / 8] = static_cast<uint8_t>(b);
    bits[j / 8 + 1] = static_cast<uint8_t>(b >> 8);
  }
  return bits[first_block % (kTileWords / 8)];
}

// FNV-1a over every word and every mask byte of a few runs of the stream, untimed: equal on every level only
// if every chain, lane and word agrees. Runs start on and off the step of kPhiloxVecs * kBlocks blocks, with
// a block count that leaves a remainder (65), and one wraps at 2^62 blocks (docs/rng.md).
uint64_t checksum(uint64_t seed, vu32 t) {
  alignas(64) static uint32_t words[4 * 65 + 4 * kBlocks + 4];
  alignas(64) static uint8_t bits[4 * 64 / 8];
  const uint64_t starts[] = {0, 12345, (uint64_t{1} << 62) - 3};
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  for (const uint64_t first : starts) {
    generate(first, 65, seed, words);
    for (int64_t j = 0; j < 4 * 65; ++j) mix(words[j]);
    decide(first, 64, seed, t, words, bits);
    for (int64_t j = 0; j < 4 * 64 / 8; ++j) mix(bits[j]);
  }
  return h;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 21;
  const int64_t tiles = argc > 2 ? std::atoll(argv[2]) : 20000;  // per round and measure
  alignas(64) static uint32_t words[kTileWords + 4 * kBlocks + 4];
  alignas(64) static uint8_t bits[kTileWords / 8];
  const uint64_t seed = 0x243F6A8885A308D3ull;
  const vu32 t = vu32{} + 429496730u;  // p = 0.1
  uint64_t sink = 0;
  std::vector<double> gen, dec;
  uint64_t block = 0;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < tiles; ++i, block += kTileBlocks) sink += generate(block, kTileBlocks, seed, words);
    auto t1 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < tiles; ++i, block += kTileBlocks) sink += decide(block, kTileBlocks, seed, t, words, bits);
    auto t2 = std::chrono::steady_clock::now();
    gen.push_back(tiles * kTileWords / std::chrono::duration<double>(t1 - t0).count());
    dec.push_back(tiles * kTileWords / std::chrono::duration<double>(t2 - t1).count());
  }
  std::printf("{\"generate_words_per_s\": %.6g, \"decide_words_per_s\": %.6g, \"checksum\": %llu, \"sink\": %llu}\n",
              median(gen), median(dec), static_cast<unsigned long long>(checksum(seed, t)),
              static_cast<unsigned long long>(sink));
  return 0;
}
