"""`chatbot bench`: replies/s and latency of the worker against the seed's eager decoding, as JSON.

The worker rows use greedy decoding (as the seed did); at 64 concurrent requesters,
`worker_c64_beam4` shows the cost of beam search and `worker_c64_daemon` the daemon's default
(the best-fitting bank answer, beam search only where none fits; only for a model with an answer
bank and a selector).

Everything is measured in one process on the same model and the same fixed mix of real
ChatbotData questions (held-out ones, which the model never trained on).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time


def _summary(latencies_s: list[float], wall_s: float) -> dict:
    ms = sorted(x * 1000 for x in latencies_s)
    return {
        "replies": len(ms),
        "replies_per_s": round(len(ms) / wall_s, 2),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
    }


def bench_seed_eager(responder, questions: list[str]) -> dict:
    from core_model.baselines import seed_eager_decode
    from core_model.tokenizer import detokenize

    model, vocab = responder.loaded.model, responder.loaded.vocab
    seed_eager_decode(model, responder.encode(questions[0]))  # first call builds eager kernels
    latencies = []
    start = time.perf_counter()
    for q in questions:
        t0 = time.perf_counter()
        detokenize(vocab.decode(seed_eager_decode(model, responder.encode(q))))
        latencies.append(time.perf_counter() - t0)
    return _summary(latencies, time.perf_counter() - start)


async def bench_worker(worker, questions: list[str], concurrency: int, total: int) -> tuple[dict, list[str]]:
    latencies: list[float] = []
    replies: list[str] = []
    counter = iter(range(total))

    async def requester() -> None:
        for i in counter:
            t0 = time.perf_counter()
            result = await worker.reply(questions[i % len(questions)])
            latencies.append(time.perf_counter() - t0)
            replies.append(result.text)

    start = time.perf_counter()
    await asyncio.gather(*(requester() for _ in range(concurrency)))
    return _summary(latencies, time.perf_counter() - start), replies


async def run(model_dir: str, quick: bool) -> dict:
    from bot.paths import BASE_CORPUS
    from bot.settings import Settings
    from bot.worker import InferenceWorker, WorkerConfig
    from core_model.data import read_pairs, split
    from core_model.responder import Responder

    _, held = split(read_pairs(BASE_CORPUS))
    questions = [p.q for p in held[:64]]
    responder = Responder(model_dir, answer_bank=False)
    responder.warm_up()
    seed = bench_seed_eager(responder, questions[: 6 if quick else 32])
    worker = InferenceWorker(model_dir, WorkerConfig(max_batch=64, batch_window_ms=5, queue_size=1024,
                                                     timeout_s=600), engine_factory=lambda _: responder)
    await worker.start()
    out: dict = {"model": responder.version, "device": responder.device, "seed_eager": seed}
    sizes = {1: 12, 8: 64, 64: 384} if quick else {1: 48, 8: 256, 64: 1536}
    for conc, total in sizes.items():
        await bench_worker(worker, questions, conc, min(total, conc * 2))  # warm this batch shape
        stats, replies = await bench_worker(worker, questions, conc, total)
        out[f"worker_c{conc}"] = stats
    await worker.stop()
    for key, answer_bank in (("worker_c64_beam4", False), ("worker_c64_daemon", Settings.answer_bank)):
        engine = Responder(model_dir, tokenizer=responder.tokenizer, beam_width=Settings.beam_width,
                           answer_bank=answer_bank, loaded=responder.loaded)
        if answer_bank and engine.ranker is None:
            continue
        engine.reply_batch(questions[:8])
        worker = InferenceWorker(model_dir, WorkerConfig(max_batch=64, batch_window_ms=5, queue_size=1024,
                                                         timeout_s=600), engine_factory=lambda _, e=engine: e)
        await worker.start()
        await bench_worker(worker, questions, 64, 128)
        out[key], _ = await bench_worker(worker, questions, 64, sizes[64] // 2)
        await worker.stop()
    tokens = sum(len(responder.tokenizer.tokenize(r)) + 1 for r in replies)  # + <eos>
    out["tokens_per_s_c64"] = round(tokens / (len(replies) / out["worker_c64"]["replies_per_s"]), 1)
    out["speedup_c64"] = round(out["worker_c64"]["replies_per_s"] / seed["replies_per_s"], 2)
    out["latency_ratio_c1"] = round(out["worker_c1"]["p50_ms"] / seed["p50_ms"], 4)
    out["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    from bot.paths import default_model_dir

    parser = argparse.ArgumentParser(prog="chatbot bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: models/current or models/default)")
    parser.add_argument("--quick", action="store_true", help="fewer requests: under a minute on 2 CPU cores")
    args = parser.parse_args(argv)
    result = asyncio.run(run(str(args.model or default_model_dir()), args.quick))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
