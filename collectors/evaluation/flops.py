"""FLOPs catalogue of the Annex D models with Annex E's conventions (T/CECA-G 0355—2025).

Figures are forward FLOPs per sample at batch size 1 (per sequence for the language models), a
multiply-add counted as 2 FLOPs (Annex E.2); a training sample counts 3 × forward (backward =
2 × forward, the optimizer update ignored; Annex E.1). Only the multiply-add layers that
Annex E.2 names are counted (convolutions, fully connected layers, the transformer's
embedding, attention and feed-forward); element-wise work (normalisation, activations,
pooling, residual adds, softmax) is left out, as ptflops' and thop's conv/linear counts do.
The per-model architecture and its assumptions live in `flops_models.py`; docs/flops.md
writes the conventions out.
"""

from __future__ import annotations

from dcmeter.collectors.evaluation.flops_models import BUILDERS, SEQUENCE_LENGTH, Layer

__all__ = [
    "MODELS",
    "PRECISION_TO_FP16",
    "SEQUENCE_LENGTH",
    "TRAINING_FACTOR",
    "UnknownModel",
    "forward_flops",
    "fp16_equivalent",
    "inference_flops",
    "layer_breakdown",
    "training_flops",
]

MODELS: tuple[str, ...] = (
    "resnet-50",
    "retinanet",
    "bert-large",
    "llama2-7b",
    "llama2-70b",
    "dlrm-dcnv2",
)

# Annex E.1: one training sample = forward + backward (2 × forward); optimizer update ignored.
TRAINING_FACTOR = 3.0

# Factor that turns operations performed at a precision into FP16-equivalent FLOPs (6.3.2:
# "F is normally counted at FP16; convert when the precision differs"). The catalogue counts
# the operations the model defines, which do not change with precision, so the conversion
# is by operand width relative to FP16: an 8-bit operation is half an FP16 one, a 32-bit
# operation two. The same ratios are the dense tensor-core throughput ratios of current
# accelerators (FP16/BF16 : TF32 = 1 : 0.5 on A100 and H100, FP8 = 2 × FP16 on H100), so a
# site gains nothing from switching precision alone. TF32 is stored in 32 bits and runs at
# half the FP16 rate: 2.0. The precision is that of the matrix multiplies (mixed precision
# with BF16 compute is bf16). docs/flops.md gives the reasoning and the alternative (factor 1
# everywhere).
PRECISION_TO_FP16: dict[str, float] = {
    "fp16": 1.0,
    "bf16": 1.0,
    "fp8": 0.5,
    "int8": 0.5,
    "tf32": 2.0,
    "fp32": 2.0,
    "fp64": 4.0,
}


class UnknownModel(ValueError):
    """A model name the catalogue does not hold."""


def _layers(model: str) -> list[Layer]:
    builder = BUILDERS.get(model.strip().lower())
    if builder is None:
        raise UnknownModel(
            f"no FLOPs figure for model {model!r}: the catalogue holds {', '.join(MODELS)}; "
            "for another model give the run's FLOPs directly"
        )
    return builder()


def layer_breakdown(model: str) -> list[tuple[str, float]]:
    """Return (layer name, forward FLOPs) per layer for one sample, in execution order."""
    return list(_layers(model))


def forward_flops(model: str) -> float:
    """Return forward FLOPs per sample at batch size 1 (per sequence for LMs; Annex E.1)."""
    return float(sum(flops for _, flops in _layers(model)))


def training_flops(model: str, samples: float) -> float:
    """Return FLOPs of training on `samples` samples: 3 × forward × samples (Annex E.1)."""
    return TRAINING_FACTOR * forward_flops(model) * _count(samples)


def inference_flops(model: str, samples: float) -> float:
    """Return FLOPs of inference on `samples` samples: forward × samples (Annex E.1)."""
    return forward_flops(model) * _count(samples)


def fp16_equivalent(flops: float, precision: str) -> float:
    """Return `flops` performed at `precision` as FP16-equivalent FLOPs (6.3.2, formula (3))."""
    factor = PRECISION_TO_FP16.get(precision.strip().lower())
    if factor is None:
        raise ValueError(
            f"unknown precision {precision!r}: use one of {', '.join(PRECISION_TO_FP16)}"
        )
    return flops * factor


def _count(samples: float) -> float:
    if not samples >= 0:
        raise ValueError(f"samples must be a number >= 0, got {samples!r}")
    return float(samples)
