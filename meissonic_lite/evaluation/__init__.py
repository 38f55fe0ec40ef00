"""Evaluation: the judge, an independent referee, and the harnesses that
feed it (chapters 1, 6, 7 and 8).

The referee (`judge`, `geneval`, `accuracy`) imports only the world: it
reads pixels, never a model, and it is all that this package face hands
on. The harnesses (`t2i_eval`, `edit_eval`, `diagnose`) ask models for
images or logits and give them to the referee; import them by name.
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
