#!/usr/bin/env python3
"""Average the weights of models fine-tuned from one starting point (a "model soup").

Fine-tunes that share their starting weights usually stay in one basin, where the
average of their weights can do better than each of them. The models must have the
same shape, vocabulary and features (dropout may differ); the first one's feature
statistics, dropout, metadata and vocabulary are kept, and the metadata records what
was averaged.

    python tools/average_models.py runs/soup.pt asr/models/default.pt runs/ft9/best.pt runs/ft11/best.pt
    asr eval ../shared/data/real/dev/manifest.jsonl --model runs/soup.pt --decoder greedy
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asr.checkpoint import Bundle, ModelFileError, load_model, save_model


def average(bundles: list[Bundle]) -> Bundle:
    """The first bundle with every floating-point weight replaced by the mean over ``bundles``.

    Raises ValueError when the models differ in shape, vocabulary or features.
    """
    if len(bundles) < 2:
        raise ValueError("give at least two models to average")
    first = bundles[0]
    for other in bundles[1:]:
        # Dropout is a training setting, not a shape: fine-tunes may differ in it.
        if dataclasses.replace(other.model.config, dropout=first.model.config.dropout) != first.model.config:
            raise ValueError(f"the models differ in shape: {first.model.config} and {other.model.config}")
        if other.vocabulary != first.vocabulary or other.features != first.features:
            raise ValueError("the models differ in vocabulary or features")
    states = [b.model.state_dict() for b in bundles]
    mean = {}
    for key, value in states[0].items():
        if key in ("feat_mean", "feat_std") or not value.is_floating_point():
            mean[key] = value  # the input normalisation stays the first model's
        else:
            mean[key] = torch.stack([s[key].float() for s in states]).mean(dim=0).to(value.dtype)
    first.model.load_state_dict(mean)
    return first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="model file to write")
    parser.add_argument("models", nargs="+", help="model files (or training checkpoints) to average")
    parser.add_argument(
        "--half", action="store_true", help="store the weights as float16, as the shipped model"
    )
    args = parser.parse_args()
    try:
        bundles = [load_model(path) for path in args.models]
        soup = average(bundles)
    except (ValueError, ModelFileError) as e:
        print(f"average_models.py: error: {e}", file=sys.stderr)
        return 2
    soup.metadata = {**soup.metadata, "averaged_from": list(args.models)}
    save_model(soup, args.output, half=args.half)
    print(f"wrote {args.output}: the mean of {len(bundles)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
