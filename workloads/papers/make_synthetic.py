"""TraCT's synthetic sets A/B/C and Beluga's LV-Eval-like set, as Mooncake-format traces (deterministic).

Synthetic A/B/C: a re-implementation, at block level, of ai-dynamo/dynamo's data generator
(benchmarks/data_generator/synthesizer.py, Apache-2.0; read at commit de04c4f), which TraCT
(arXiv 2512.18194) used to make its synthetic sets. Like Dynamo's Synthesizer it
1. builds the prefix tree of the Mooncake trace's hash_ids (512-token blocks) with edge weights,
2. calls a block "core" when more than one request visits it and the unique tail of a request its "user
   prompt" (Dynamo's _remove_leaves prunes nodes visited once),
3. samples a path from the root by the tree's transition frequencies: to a child core block, to "cache end"
   (then a unique prompt whose length in blocks is drawn from the pruned tails, times
   prompt_len_multiplier), or to "end" (the request stops inside the tree),
4. stretches every core block into `prefix_len_multiplier` blocks (Dynamo relabels node ids by the same
   integer factor) and, with `num_copies` (Dynamo's --prefix-root-multiplier) > 1, moves each request into one of
   that many disjoint copies of the tree,
5. draws the last block's fill (input_length - (blocks - 1) x 512), output lengths, requests per timestamp and
   gaps between timestamps from the trace's empirical distributions (Dynamo's EmpiricalSampler), and
6. drops requests longer than max_isl (Dynamo's --max-isl), as Dynamo does, without counting them.
Differences from Dynamo, on purpose: no radix chain contraction (sampling is per block: for a multiplier of
1 this is the same Markov chain on the uncontracted tree), numpy's Generator(PCG64) with a fixed seed
instead of the global numpy RNG, and no networkx/pandas dependency.

LV-Eval-like: see `lveval_like` below and workloads/papers/README.md.

Run from the repository root: `.venv/bin/python workloads/papers/make_synthetic.py` (rewrites the files).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "mooncake_conversation.jsonl.gz"
BLOCK = 512          # tokens per hash_id in the Mooncake traces (and Dynamo's default --block-size)
ROOT, CACHE_END, END = -1, -2, -3
SEED = 36            # issue #36

# name: (prefix_len_multiplier, num_copies, prompt_len_multiplier, max_isl, num_requests); see README.md
SETS = {
    "tract_synthetic_A": (1, 16, 2.0, 16384, 1000),  # low reuse: 16 disjoint trees, 2x longer unique prompts
    "tract_synthetic_B": (2, 1, 0.5, 16384, 1000),   # medium reuse: 2x longer shared prefixes, half-length prompts
    "tract_synthetic_C": (4, 1, 0.25, 16384, 1000),  # high reuse: 4x longer shared prefixes, quarter-length prompts
}


def read_trace(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Synth:
    def __init__(self, rows: list[dict]):
        visits = Counter(h for r in rows for h in r["hash_ids"])
        self.trans: dict[int, Counter] = defaultdict(Counter)
        leaves = []
        for r in rows:
            ids = r["hash_ids"]
            core = 0
            while core < len(ids) and visits[ids[core]] > 1:
                core += 1
            prev = ROOT
            for h in ids[:core]:
                self.trans[prev][h] += 1
                prev = h
            if core < len(ids):
                self.trans[prev][CACHE_END] += 1
                leaves.append(len(ids) - core)
            else:
                self.trans[prev][END] += 1
        self.nodes = {u: (np.array(list(c)), np.cumsum(list(c.values())) / sum(c.values()))
                      for u, c in self.trans.items()}
        self.max_id = max(h for r in rows for h in r["hash_ids"])
        self.leaves = np.array(leaves)
        self.last_fill = np.array([r["input_length"] - (len(r["hash_ids"]) - 1) * BLOCK for r in rows])
        assert np.all((self.last_fill > 0) & (self.last_fill <= BLOCK))
        self.outputs = np.array([r["output_length"] for r in rows])
        stamps = np.array([r["timestamp"] for r in rows])
        self.per_stamp = np.array(list(Counter(stamps.tolist()).values()))
        gaps = np.diff(stamps)
        self.gaps = gaps[gaps > 0]

    def generate(self, rng, prefix_mult: int, copies: int, prompt_mult: float, max_isl: int, n: int) -> list[dict]:
        next_id = (self.max_id + 1) * prefix_mult + prefix_mult  # unique prompt ids start past every core id
        span = None  # set after generation: ids per copy
        out, t = [], 0
        while len(out) < n:
            for _ in range(int(rng.choice(self.per_stamp))):
                node, path = ROOT, []
                while True:
                    ids, cdf = self.nodes[node]
                    nxt = int(ids[min(np.searchsorted(cdf, rng.random(), side="right"), len(ids) - 1)])
                    if nxt in (CACHE_END, END):
                        break
                    path += [nxt * prefix_mult + i for i in range(prefix_mult)]
                    node = nxt
                context = len(path) * BLOCK
                if nxt == CACHE_END:
                    tail = max(1, round(int(rng.choice(self.leaves)) * prompt_mult))
                    path += list(range(next_id, next_id + tail))
                    next_id += tail
                    isl = (len(path) - 1) * BLOCK + int(rng.choice(self.last_fill))
                else:
                    isl = len(path) * BLOCK
                osl = int(rng.choice(self.outputs))
                if isl <= max_isl:
                    out.append({"timestamp": int(t), "input_length": isl, "output_length": osl, "hash_ids": path,
                                "context_len": min(context, isl)})
                if len(out) >= n:
                    break
            t += int(rng.choice(self.gaps))
        span = next_id
        if copies > 1:
            for r in out:
                offset = int(rng.integers(0, copies)) * span
                r["hash_ids"] = [h + offset for h in r["hash_ids"]]
        return out


def ideal_hit_ratio(rows: list[dict]) -> float:
    """Share of blocks whose whole prefix (it and every earlier block) was seen before: infinite cache."""
    seen, hits, total = set(), 0, 0
    for r in rows:
        ids, prefix_ok = r["hash_ids"], True
        for h in ids:
            prefix_ok = prefix_ok and (h in seen)
            hits += prefix_ok
            total += 1
        seen.update(ids)
    return hits / total


def lveval_like(rng, n: int = 200) -> list[dict]:
    """Beluga's workload stand-in: LV-Eval long-context QA, every prompt over 15K tokens, run twice.

    Lengths: LV-Eval's 16k word level (its shortest; Qwen3-32B's 40,960-token window rules out the longer
    levels) is drawn per request as words ~ uniform over the level's published span for that bucket
    (LV-Eval README: 5 levels 16k..256k words, overall min 11,896 words), converted at 1.3 tokens a word
    (our assumption: LV-Eval is bilingual, EN/ZH) and kept in (15,000, 32,768] tokens so that every prompt
    exceeds Beluga's 15K and fits the model. Output: 64 tokens (LV-Eval's answers are short keyword answers;
    Beluga does not give output lengths: our choice). Round 2 repeats round 1's requests (same hash_ids)
    after it, so every prefix of round 2 is already pooled (Beluga's "cache hit" run); each request's
    hash_ids are its own (no two LV-Eval contexts share blocks: each instance mixes its own documents).
    """
    rows, next_id = [], 0
    for i in range(n):
        words = rng.uniform(11_896, 16_000 * 1.5)  # 16k level: 11,896 words (LV-Eval's minimum) to ~24k (ours)
        isl = int(min(max(words * 1.3, 15_001), 32_768))
        blocks = -(-isl // BLOCK)
        rows.append({"timestamp": i * 1000, "input_length": isl, "output_length": 64,
                     "hash_ids": list(range(next_id, next_id + blocks))})
        next_id += blocks
    second = [dict(r, timestamp=r["timestamp"] + n * 1000 + 60_000) for r in rows]
    return rows + second


def write(name: str, rows: list[dict]) -> None:
    with gzip.GzipFile(HERE / f"{name}.jsonl.gz", "wb", mtime=0) as f:
        for r in rows:
            f.write((json.dumps({k: r[k] for k in ("timestamp", "input_length", "output_length", "hash_ids")})
                     + "\n").encode())


def stats(rows: list[dict]) -> str:
    isl = np.array([r["input_length"] for r in rows])
    osl = np.array([r["output_length"] for r in rows])
    span_s = (rows[-1]["timestamp"] - rows[0]["timestamp"]) / 1000
    return (f"n={len(rows)} isl mean={isl.mean():.0f} std={isl.std():.0f} p50={np.median(isl):.0f} max={isl.max()} "
            f"osl mean={osl.mean():.0f} std={osl.std():.0f} rate={len(rows) / span_s:.2f} req/s "
            f"ideal_hit={ideal_hit_ratio(rows):.3f}")


def main() -> None:
    synth = Synth(read_trace(SOURCE))
    for k, (name, params) in enumerate(SETS.items()):
        rows = synth.generate(np.random.default_rng(SEED + k), *params)
        for r in rows:
            assert len(r["hash_ids"]) == -(-r["input_length"] // BLOCK)
        write(name, rows)
        print(name, params, stats(rows))
    rows = lveval_like(np.random.default_rng(SEED + 10))
    write("beluga_lveval_like", rows)
    print("beluga_lveval_like", stats(rows[: len(rows) // 2]), "| round 2 ideal hit 1.0")


if __name__ == "__main__":
    main()
