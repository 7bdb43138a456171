#!/usr/bin/env python3
"""Reference log-probabilities from ONNX Runtime's Python API, for tests/logprobs.rs.

    echo '{"model": "DIR", "ids": [...], "from": 300, "top": 8}' | python3 scripts/goldens/ort_logprobs.py

Runs DIR/model.onnx (an Optimum-layout decoder) once over all `ids` (no KV cache: a zero-length past,
use_cache_branch false), and for every position p >= `from` - 1 that has a next id, prints the
log-softmax (float64, over the whole logits row) of logits[p] at ids[p + 1] and the `top` most likely ids
with theirs: {"logprobs": [...], "top": [[[id, logprob], ...], ...]}. So "from" is the index of the
first scored id (the prompt's length when scoring a continuation).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "setup"))
import onnx_llama as ol  # noqa: E402


def main() -> int:
    req = json.load(sys.stdin)
    sess = ol.ort_session(str(Path(req["model"]) / "model.onnx"))
    ids = [int(i) for i in req["ids"]]
    x = np.array([ids], dtype=np.int64)
    m = np.ones_like(x)
    names = {i.name for i in sess.get_inputs()}
    feed = ol._feed(sess, x, m, ol.positions_from_mask(m), ol.empty_past(sess, 1, 0), use_cache_branch=False)
    if "num_logits_to_keep" in names:
        feed["num_logits_to_keep"] = np.array(len(ids), dtype=np.int64)
    logits = sess.run(["logits"], feed)[0][0].astype(np.float64)
    assert logits.shape[0] == len(ids), logits.shape
    out_lp, out_top = [], []
    for p in range(int(req["from"]) - 1, len(ids) - 1):
        row = logits[p]
        mx = row.max()
        lsm = row - mx - np.log(np.exp(row - mx).sum())
        out_lp.append(float(lsm[ids[p + 1]]))
        order = np.argsort(-lsm, kind="stable")[: int(req.get("top", 8))]
        out_top.append([[int(i), float(lsm[i])] for i in order])
    json.dump({"logprobs": out_lp, "top": out_top}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
