"""Evaluation: the judge (an independent referee) and GenEval-lite (chapter 1).

Nothing here imports a model: the judge reads pixels only.
"""

from .accuracy import judge_accuracy, true_score_envelope
from .geneval import (
    CATEGORIES,
    geneval_lite,
    load_geneval_prompts,
    make_geneval_prompts,
    prompt_scene,
    score_detections,
    score_item,
)
from .judge import ACCEPT_SCORE, Detection, count, detect, match_scene

__all__ = [
    "ACCEPT_SCORE", "CATEGORIES", "Detection", "count", "detect",
    "geneval_lite", "judge_accuracy", "load_geneval_prompts",
    "make_geneval_prompts", "match_scene", "prompt_scene", "score_detections",
    "score_item",
    "true_score_envelope",
]
