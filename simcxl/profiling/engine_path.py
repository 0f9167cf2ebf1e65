"""CPU-side costs on a request's fixed path to its first token: ``python -m simcxl.profiling.engine_path -o DIR``.

Times, with what the machine has (every section is skipped, and said so, when its package is missing):

- ``tokenizer.csv``: encoding a prompt of N tokens (1k..32k) with a byte-level BPE of Llama-3's shape
  (128k vocabulary, Llama-3's pre-tokenizer regex), through the ``tokenizers`` object and through the
  ``transformers`` fast-tokenizer wrapper that vLLM and SGLang call; and decoding the first output token
  incrementally. A real Llama-3/Qwen vocabulary is used when one is found in the local Hugging Face cache
  (there is no network on the device machine); otherwise a proxy BPE is trained on local text (the
  Python standard library's sources) to the same vocabulary size, and the CSV says which.
- ``serialize.csv``: pickle / msgpack / msgspec of a request object carrying N prompt token ids (vLLM's
  EngineCoreRequest is msgspec+msgpack, SGLang's TokenizedGenerateReqInput is pickled by pyzmq's
  send_pyobj), and a loopback round trip of it between two processes over a Unix socket (ZMQ ``ipc://``
  is a Unix socket underneath) or over ZMQ when pyzmq is installed.
- ``gpu_step.csv``: per-step input preparation (torch.tensor from a list of N ids, a pinned host-to-device
  copy with a sync), sampling over a 128k vocabulary (argmax; top-k/top-p by sort) for batch B with the
  sampled ids copied back to a Python list, a bare kernel launch and a sync, and 100 small kernels launched
  eagerly vs replayed from one CUDA graph.
- ``http.csv``: ``simcxl.profiling.frontend``'s loopback HTTP exchange (reused, not re-implemented).

Every figure is a median of repeated runs in seconds; ``info.json`` says the machine and versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pickle
import platform
import random
import socket
import statistics
import sys
import sysconfig
import time
from pathlib import Path

PROMPT_TOKENS = (1024, 2048, 4096, 8192, 16384, 32768)
VOCAB = 128256
# Llama-3's (tiktoken cl100k-style) pre-tokenizer regex, as in its tokenizer.json.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _median_time(fn, rounds: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _rounds(n_tokens: int) -> int:
    return max(5, min(50, 200_000 // n_tokens))


# ----------------------------------------------------------------------------------------------- tokenizer
def _local_corpus(limit_bytes: int = 24_000_000) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, size = [], 0
    for path in sorted(root.rglob("*.py")):
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        texts.append(text)
        size += len(text)
        if size >= limit_bytes:
            break
    return texts


def _real_tokenizer():
    """A Llama-3 / Qwen tokenizer.json from the local Hugging Face cache, if one is there."""
    roots = [Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"]
    for root in roots:
        if not root.is_dir():
            continue
        for path in root.rglob("tokenizer.json"):
            name = str(path).lower()
            if any(key in name for key in ("llama-3", "llama3", "meta-llama", "qwen")):
                return path
    return None


def _proxy_tokenizer(texts: list[str]):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def tokenizer_rows() -> tuple[list[str], dict]:
    try:
        import tokenizers
        from tokenizers import Tokenizer
    except ImportError:
        return [], {"tokenizer": "skipped: no tokenizers package"}
    texts = _local_corpus()
    real = _real_tokenizer()
    start = time.perf_counter()
    if real is not None:
        tok, kind = Tokenizer.from_file(str(real)), f"real:{real}"
    else:
        tok, kind = _proxy_tokenizer(texts), "proxy: byte-level BPE trained on Python stdlib sources"
    build_s = time.perf_counter() - start
    info = {"tokenizer": kind, "tokenizer_vocab": tok.get_vocab_size(), "tokenizer_build_s": build_s,
            "tokenizers": tokenizers.__version__}
    try:
        import transformers
        from transformers import PreTrainedTokenizerFast

        hf = PreTrainedTokenizerFast(tokenizer_object=tok)
        info["transformers"] = transformers.__version__
    except ImportError:
        hf = None
    # Two prompt kinds: natural text (source and docstrings, held out of nothing: the cost of BPE merges on
    # text the vocabulary knows), and the serving benchmarks' "random" prompts (random token ids decoded to
    # text and re-tokenized by the server, as vLLM's benchmark_serving --dataset-name random builds them).
    natural = "\n".join(texts[::-1])
    rng = random.Random(0)
    vocab_n = tok.get_vocab_size()
    random_text = tok.decode([rng.randrange(vocab_n) for _ in range(max(PROMPT_TOKENS) * 2)])
    rows = ["prompt_kind,prompt_tokens,chars,encode_s,hf_encode_s,decode_one_s"]
    for prompt_kind, source in (("natural", natural), ("random", random_text)):
        ids = tok.encode(source[:max(PROMPT_TOKENS) * 12]).ids
        for n in PROMPT_TOKENS:
            if len(ids) < n:
                continue
            text = tok.decode(ids[:n])
            n_real = len(tok.encode(text).ids)
            rounds = _rounds(n)
            encode_s = _median_time(lambda: tok.encode(text), rounds)
            hf_s = _median_time(lambda: hf(text), rounds) if hf is not None else float("nan")
            # Incremental detokenization of the first output token: decode a short window of the tail, as
            # vLLM's and SGLang's incremental detokenizers do (prefix offset window), then take the suffix.
            tail = ids[n - 6:n] + [ids[n]]
            decode_s = _median_time(lambda: (tok.decode(tail[:-1]), tok.decode(tail)), 200)
            rows.append(f"{prompt_kind},{n_real},{len(text)},{encode_s!r},{hf_s!r},{decode_s!r}")
    info["gil_main_progress_while_encoding_8k"] = _gil_share(tok, tok.decode(ids[:8192]))
    return rows, info


def _gil_share(tok, text: str, seconds: float = 0.5) -> float:
    """Progress of a pure-Python loop while another thread encodes ``text`` over and over, relative to
    the loop alone: ~1 if encode releases the GIL (and a core is free), near 0 if it holds it. The engines
    tokenize in a thread of the API server's process, whose event loop also streams every request."""
    import threading

    def spin() -> int:
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            n += 1
        return n
    alone = spin()
    stop = threading.Event()

    def encode_forever():
        while not stop.is_set():
            tok.encode(text)
    worker = threading.Thread(target=encode_forever)
    worker.start()
    shared = spin()
    stop.set()
    worker.join()
    return shared / alone


# ------------------------------------------------------------------------------------------- serialization
def _request(n: int) -> dict:
    rng = random.Random(n)
    return {"request_id": f"cmpl-{n:032x}-0", "prompt_token_ids": [rng.randrange(VOCAB) for _ in range(n)],
            "sampling_params": {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "max_tokens": 1024,
                                "ignore_eos": True, "stop": [], "stop_token_ids": [128001, 128009]},
            "arrival_time": time.time(), "lora_request": None, "cache_salt": None, "priority": 0,
            "data_parallel_rank": None}


def _echo_server(path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    conn, _ = server.accept()
    while True:
        header = conn.recv(8, socket.MSG_WAITALL)
        if len(header) < 8:
            return
        size = int.from_bytes(header, "little")
        data = conn.recv(size, socket.MSG_WAITALL)
        pickle.loads(data)
        conn.sendall((8).to_bytes(8, "little") + b"received")


def serialize_rows() -> tuple[list[str], dict]:
    import multiprocessing as mp

    codecs = {"pickle": (lambda o: pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL), pickle.loads)}
    info = {}
    try:
        import msgpack
        codecs["msgpack"] = (msgpack.packb, msgpack.unpackb)
        info["msgpack"] = msgpack.version
    except ImportError:
        info["msgpack"] = "not installed"
    try:
        import msgspec
        codecs["msgspec"] = (msgspec.msgpack.encode, msgspec.msgpack.decode)
        info["msgspec"] = msgspec.__version__
    except ImportError:
        info["msgspec"] = "not installed"
    rows = ["codec,prompt_tokens,bytes,encode_s,decode_s,uds_round_trip_s"]
    path = f"/tmp/simcxl_engine_path_{os.getpid()}.sock"
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=_echo_server, args=(path,), daemon=True)
    proc.start()
    for _ in range(100):
        if os.path.exists(path):
            break
        time.sleep(0.05)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    try:
        for n in PROMPT_TOKENS:
            req = _request(n)
            rounds = _rounds(n) * 4
            for name, (enc, dec) in codecs.items():
                blob = enc(req)
                enc_s = _median_time(lambda: enc(req), rounds)
                dec_s = _median_time(lambda: dec(blob), rounds)
                rt = float("nan")
                if name == "pickle":  # one process hop and back: send pickled request, peer unpickles, acks
                    def hop():
                        data = enc(req)
                        client.sendall(len(data).to_bytes(8, "little") + data)
                        size = int.from_bytes(client.recv(8, socket.MSG_WAITALL), "little")
                        client.recv(size, socket.MSG_WAITALL)
                    rt = _median_time(hop, rounds)
                rows.append(f"{name},{n},{len(blob)},{enc_s!r},{dec_s!r},{rt!r}")
    finally:
        client.close()
        proc.terminate()
        proc.join()
        os.unlink(path)
    try:
        import zmq
        rows += _zmq_rows(codecs["pickle"][0])
        info["pyzmq"] = zmq.__version__
    except ImportError:
        info["pyzmq"] = "not installed (Unix-socket round trip stands in for ZMQ ipc://)"
    return rows, info


def _zmq_peer(addr: str) -> None:
    import zmq
    sock = zmq.Context().socket(zmq.REP)
    sock.bind(addr)
    while True:
        msg = sock.recv()
        if msg == b"stop":
            sock.send(b"")
            return
        pickle.loads(msg)
        sock.send(b"ok")


def _zmq_rows(enc) -> list[str]:
    import multiprocessing as mp

    import zmq
    addr = f"ipc:///tmp/simcxl_engine_path_zmq_{os.getpid()}"
    proc = mp.get_context("fork").Process(target=_zmq_peer, args=(addr,), daemon=True)
    proc.start()
    sock = zmq.Context().socket(zmq.REQ)
    sock.connect(addr)
    rows = []
    for n in PROMPT_TOKENS:
        req = _request(n)
        def hop():
            sock.send(enc(req))
            sock.recv()
        rows.append(f"zmq_pickle,{n},{len(enc(req))},nan,nan,{_median_time(hop, _rounds(n) * 4)!r}")
    sock.send(b"stop")
    sock.recv()
    proc.join()
    return rows


# -------------------------------------------------------------------------------------------- GPU per step
def gpu_rows() -> tuple[list[str], dict]:
    try:
        import torch
    except ImportError:
        return [], {"gpu": "skipped: no torch"}
    if not torch.cuda.is_available():
        return [], {"gpu": "skipped: no CUDA device", "torch": torch.__version__}
    dev = torch.device("cuda")
    info = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda}
    rows = ["op,size,batch,median_s"]
    sync = torch.cuda.synchronize

    def timed(fn, rounds=200):
        return _median_time(lambda: (fn(), sync()), rounds, warmup=10)

    rows.append(f"sync_idle,0,0,{timed(lambda: None)!r}")
    x = torch.zeros(16, device=dev)
    rows.append(f"launch_one_kernel_sync,16,0,{timed(lambda: x.add_(1))!r}")
    # input preparation: a step's token ids / positions from Python lists, copied to the GPU
    rng = random.Random(0)
    for n in (1, 32, 256, 1024, 8192, 32768):
        ids = [rng.randrange(VOCAB) for _ in range(n)]
        rows.append(f"torch_tensor_from_list,{n},0,{_median_time(lambda: torch.tensor(ids, dtype=torch.int32), 100)!r}")
        pinned = torch.tensor(ids, dtype=torch.int64).pin_memory()
        rows.append(f"pinned_h2d_copy_sync,{n},0,{timed(lambda: pinned.to(dev, non_blocking=True))!r}")
        pinned_buf = torch.empty(n, dtype=torch.int64).pin_memory()
        gpu_buf = torch.empty(n, dtype=torch.int64, device=dev)

        def prepare():  # list -> pinned staging buffer -> persistent GPU buffer (vLLM's CpuGpuBuffer path)
            pinned_buf.copy_(torch.tensor(ids, dtype=torch.int64))
            gpu_buf.copy_(pinned_buf, non_blocking=True)
        rows.append(f"prepare_ids_list_to_gpu_sync,{n},0,{timed(prepare, 100)!r}")
    # sampling over a 128k vocabulary; the sampled ids come back to a Python list (.tolist() syncs)
    for b in (1, 8, 32, 128):
        logits = torch.randn(b, VOCAB, device=dev, dtype=torch.bfloat16)
        rows.append(f"greedy_argmax_tolist,{VOCAB},{b},{timed(lambda: logits.float().argmax(-1).tolist())!r}")

        def top_p():
            lg = logits.float() / 0.7
            probs_sorted, idx = torch.sort(lg, dim=-1, descending=True)
            probs_sorted = probs_sorted.softmax(-1)
            cum = probs_sorted.cumsum(-1)
            probs_sorted[(cum - probs_sorted) > 0.95] = 0
            pick = torch.multinomial(probs_sorted, 1)
            return idx.gather(-1, pick).view(-1).tolist()
        rows.append(f"top_p_sort_sample_tolist,{VOCAB},{b},{timed(top_p, 100)!r}")
    # 100 small kernels: eager launches vs one CUDA graph replay
    y = torch.zeros(4096, device=dev)

    def hundred():
        for _ in range(100):
            y.mul_(1.0001)
    rows.append(f"eager_100_kernels_sync,4096,0,{timed(hundred, 50)!r}")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        hundred()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        hundred()
    rows.append(f"graph_replay_100_kernels_sync,4096,0,{timed(graph.replay, 200)!r}")
    start = time.perf_counter()
    for _ in range(1000):
        y.mul_(1.0001)
    rows.append(f"eager_launch_cpu_per_kernel_nosync,4096,0,{(time.perf_counter() - start) / 1000!r}")
    sync()
    return rows, info


# -------------------------------------------------------------------------------------------------- HTTP
def http_rows() -> tuple[list[str], dict]:
    from simcxl.profiling import frontend
    return frontend.measure_rows(), {"http_server": "http.server (loopback), simcxl.profiling.frontend"}


def measure(out_dir: Path, sections: list[str]) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    info = {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.date.today().isoformat()}
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                 if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    for name, fn in (("tokenizer", tokenizer_rows), ("serialize", serialize_rows), ("gpu_step", gpu_rows),
                     ("http", http_rows)):
        if name not in sections:
            continue
        start = time.perf_counter()
        rows, extra = fn()
        info.update(extra)
        info[f"{name}_wall_s"] = time.perf_counter() - start
        if rows:
            (out_dir / f"{name}.csv").write_text("\n".join(rows) + "\n")
        print(name, json.dumps(extra), file=sys.stderr, flush=True)
    (out_dir / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--sections", default="tokenizer,serialize,gpu_step,http")
    args = parser.parse_args()
    print(json.dumps(measure(args.output, args.sections.split(","))))
