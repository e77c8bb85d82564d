"""Feature normalization, fitted on training data and saved as JSON (never pickle).

Kinds (``Normalizer(kind)``):

- ``none``: features pass through unchanged (as float32).
- ``standard``: z-score per feature, ``(x - mean) / std`` with statistics of the training set.
- ``minmax``: ``(x - min) / (max - min)`` per feature; unseen values may leave ``[0, 1]``.
- ``log1p_standard``: signed log first, ``sign(x) * log1p(|x|)``, then z-score; tames the heavy
  tails of count-like features (term frequencies, PageRank).
- ``query_minmax`` / ``query_zscore``: min-max / z-score per query, over that query's documents
  only (LETOR's ``QueryLevelNorm``). They learn nothing at fit time.

Conventions:

- Statistics are computed in float64; ``std`` is the population standard deviation (ddof=0),
  as in scikit-learn's ``StandardScaler``.
- A constant feature (over the training set, or over one query for the query-level kinds) never
  divides by zero: its scale factor is 0 and it normalizes to exactly 0. A model therefore never
  sees values of a feature it could not learn from. Constant training features are reported once
  per fit through ``logging`` (not ``warnings``).
- ``transform`` returns float32 computed in float64; :meth:`Normalizer.to_module` does the same
  in float32 torch ops (so an ONNX export carries the normalization), equal up to float32
  rounding of the result. That needs care where a feature's values lie far from zero next to
  their spread (counts, timestamps near 1e6): the float64 shift is subtracted in two float32
  parts (:class:`ShiftModule`), the signed log is subtracted as a log of a ratio, and the
  per-query z-score sums distances to the query's minimum, never raw values. A plain float32
  ``x - float32(mean)`` would be off by up to half an ulp of the mean (0.03 at 1e6), which can
  be most of a standard deviation.
- The JSON (:meth:`Normalizer.save`) stores float64 statistics with full precision (Python's
  shortest round-trip repr), so a loaded normalizer transforms bit-identically.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import nn

from ltr._fs import atomic_write_json
from ltr.data.letor import LetorData
from ltr.errors import ConfigError, DataFormatError, DataNotFoundError, LtrError, ShapeError

__all__ = [
    "NORMALIZER_KINDS",
    "NO_FEATURES",
    "Normalizer",
    "NormalizerKind",
    "NormalizerModule",
    "ShiftModule",
]

logger = logging.getLogger(__name__)

NormalizerKind = Literal[
    "none", "standard", "minmax", "log1p_standard", "query_minmax", "query_zscore"
]
NORMALIZER_KINDS: tuple[str, ...] = get_args(NormalizerKind)
FORMAT = "ltr.normalizer"
FORMAT_VERSION = 1
# what a data file without a single feature is told, by the normalizer and by load_splits
NO_FEATURES = "no features (every line has only a label and qid)"

# per-feature statistics each global kind learns, in JSON order
_STATISTICS: dict[str, tuple[str, ...]] = {
    "standard": ("mean", "std"),
    "log1p_standard": ("mean", "std"),
    "minmax": ("min", "max"),
}
_QUERY_KINDS = ("query_minmax", "query_zscore")


def _check_kind(kind: object, where: str) -> str:
    if kind not in NORMALIZER_KINDS:
        raise ConfigError(
            f"{where}: normalizer kind must be one of {', '.join(NORMALIZER_KINDS)}; got {kind!r}"
        )
    return str(kind)


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    logged: np.ndarray = np.sign(x) * np.log1p(np.abs(x))
    return logged


def _reciprocal(scale: np.ndarray) -> np.ndarray:
    """``1 / scale`` where ``scale > 0``, else 0 (a constant normalizes to 0).

    A scale below float32's smallest normal number also counts as 0: its reciprocal would
    overflow to inf in the float32 module.
    """
    positive = scale >= np.finfo(np.float32).tiny
    inverse: np.ndarray = np.divide(1.0, scale, out=np.zeros_like(scale), where=positive)
    return inverse


class Normalizer:
    """Per-feature normalization of ranking features; see the module docstring for the kinds.

    Args:
        kind: one of :data:`NORMALIZER_KINDS`.

    Attributes:
        kind: the normalization kind.
        n_features: feature count seen at fit (None before fit).
        statistics: float64 ``[n_features]`` arrays by name (``mean``/``std`` or ``min``/``max``);
            empty for kinds that learn nothing.

    Raises:
        ConfigError: an unknown kind.
    """

    def __init__(self, kind: NormalizerKind | str = "none") -> None:
        self.kind = _check_kind(kind, "normalization")
        self.n_features: int | None = None
        self.statistics: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"Normalizer(kind={self.kind!r}, n_features={self.n_features})"

    @property
    def is_fitted(self) -> bool:
        return self.n_features is not None

    @property
    def per_query(self) -> bool:
        """True for the kinds that normalize within each query (they need ``query_offsets``)."""
        return self.kind in _QUERY_KINDS

    def fit(self, data: LetorData) -> Normalizer:
        """Learn per-feature statistics from the training data; returns ``self``.

        Args:
            data: training data, ``features [n_docs, n_features]``; at least one document for the
                global kinds.

        Raises:
            DataFormatError: the file ``data`` was read from has no features at all.
            ShapeError: features that are not ``[n_docs, n_features]`` with at least one
                column, or not finite.
        """
        features = np.asarray(data.features)
        if features.ndim != 2:
            raise ShapeError(f"features must be [n_docs, n_features]; got {features.shape}")
        if features.shape[1] == 0:  # a file of labels and qids only: nothing to learn from
            if data.source is not None:
                raise DataFormatError(data.source, None, NO_FEATURES)
            raise ShapeError(f"features need at least one column; got shape {features.shape}")
        _check_finite(features)
        self.n_features = int(features.shape[1])
        self.statistics = {}
        if self.kind not in _STATISTICS:
            return self
        if features.shape[0] == 0:
            raise ShapeError(f"fitting a {self.kind!r} normalizer needs at least one document")
        x = features.astype(np.float64)
        low, high = x.min(axis=0), x.max(axis=0)
        constant = low == high
        if self.kind == "minmax":
            self.statistics = {"min": low, "max": high}
        else:
            if self.kind == "log1p_standard":
                x = _signed_log1p(x)
            mean, std = x.mean(axis=0), x.std(axis=0)  # population std (ddof=0)
            # exact constants: float rounding must not leave a tiny std that blows up later
            mean[constant] = x[0, constant]
            std[constant] = 0.0
            self.statistics = {"mean": mean, "std": std}
        if constant.any():
            columns = np.flatnonzero(constant)
            logger.warning(
                "%d feature(s) are constant in %s and normalize to 0: LETOR feature ids %s",
                columns.size,
                data.source or "the training data",
                ", ".join(str(c + 1) for c in columns),
            )
        return self

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """The fitted global transform as ``y = (x - shift) * inv_scale``, per feature.

        For ``log1p_standard``, ``x`` is the signed log of the raw feature. ONNX export uses this
        to fold ``inv_scale`` into the scorer's first layer.

        Returns:
            float64 ``(shift, inv_scale)``, each ``[n_features]``; ``inv_scale`` is 0 for a
            constant feature.

        Raises:
            LtrError: not a global kind (``standard``, ``minmax``, ``log1p_standard``), or not
                fitted.
        """
        if self.kind not in _STATISTICS or not self.is_fitted:
            raise LtrError(f"a fitted global normalizer has an affine form; this is {self!r}")
        if self.kind == "minmax":
            low, high = self.statistics["min"], self.statistics["max"]
            return low, _reciprocal(high - low)
        return self.statistics["mean"], _reciprocal(self.statistics["std"])

    def _check_features(self, features: np.ndarray) -> None:
        if self.kind in _STATISTICS and not self.is_fitted:
            raise LtrError(
                f"a {self.kind!r} normalizer must be fitted before transform; call fit(train) first"
            )
        if features.ndim != 2:
            raise ShapeError(f"features must be [n_docs, n_features]; got {features.shape}")
        if self.n_features is not None and features.shape[1] != self.n_features:
            raise ShapeError(
                f"the normalizer was fitted on {self.n_features} features; got {features.shape[1]}"
            )

    def transform(
        self, features: np.ndarray, query_offsets: np.ndarray | None = None
    ) -> np.ndarray:
        """Normalize flat features.

        Args:
            features: ``[n_docs, n_features]``.
            query_offsets: ``int [n_queries + 1]`` query boundaries; needed by the per-query kinds.

        Returns:
            float32 ``[n_docs, n_features]``.

        Raises:
            ShapeError: a feature count other than the fitted one, or missing ``query_offsets``.
            LtrError: a global kind used before :meth:`fit`.
        """
        features = np.asarray(features)
        self._check_features(features)
        if self.kind == "none":
            return features.astype(np.float32)
        x = features.astype(np.float64)
        if self.per_query:
            if query_offsets is None:
                raise ShapeError(f"normalizer kind {self.kind!r} needs query_offsets")
            return _normalize_per_query(x, np.asarray(query_offsets), self.kind)
        if self.kind == "log1p_standard":
            x = _signed_log1p(x)
        shift, inv_scale = self.affine()
        out: np.ndarray = ((x - shift) * inv_scale).astype(np.float32)
        return out

    def transform_data(self, data: LetorData) -> LetorData:
        """``data`` with normalized features; other arrays are shared."""
        return replace(data, features=self.transform(data.features, data.query_offsets))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: format, version, kind, n_features, statistics (lists)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "kind": self.kind,
            "n_features": self.n_features,
            "statistics": {name: values.tolist() for name, values in self.statistics.items()},
        }

    @classmethod
    def from_dict(cls, obj: Any, *, source: str = "normalizer") -> Normalizer:
        """Rebuild a normalizer from :meth:`to_dict` output.

        Args:
            obj: the parsed JSON object.
            source: name used in error messages (a file path).

        Raises:
            ConfigError: a wrong format or version, an unknown kind, statistics that do not
                match the kind or ``n_features``, a negative std, or a max below its min.
        """
        if not isinstance(obj, dict):
            raise ConfigError(f"{source}: expected a JSON object; got {type(obj).__name__}")
        if obj.get("format") != FORMAT or obj.get("version") != FORMAT_VERSION:
            raise ConfigError(
                f"{source}: expected format {FORMAT!r} version {FORMAT_VERSION}; got "
                f"{obj.get('format')!r} version {obj.get('version')!r}"
            )
        normalizer = cls(_check_kind(obj.get("kind"), f"{source}: kind"))
        n_features = obj.get("n_features")
        if n_features is not None and (
            not isinstance(n_features, int) or isinstance(n_features, bool) or n_features < 0
        ):
            raise ConfigError(
                f"{source}: n_features must be a non-negative integer; got {n_features!r}"
            )
        statistics = obj.get("statistics", {})
        expected = _STATISTICS.get(normalizer.kind, ())
        if not isinstance(statistics, dict) or sorted(statistics) != sorted(expected):
            got = sorted(statistics) if isinstance(statistics, dict) else statistics
            raise ConfigError(
                f"{source}: statistics of kind {normalizer.kind!r} must be {list(expected)}; "
                f"got {got!r}"
            )
        if expected and n_features is None:
            raise ConfigError(f"{source}: n_features is missing for kind {normalizer.kind!r}")
        for name in expected:
            values = statistics[name]
            if not isinstance(values, list) or len(values) != n_features:
                size = len(values) if isinstance(values, list) else type(values).__name__
                raise ConfigError(
                    f"{source}: statistics.{name} must list n_features={n_features} numbers; "
                    f"got {size}"
                )
            if not all(_is_finite_number(v) for v in values):
                raise ConfigError(f"{source}: statistics.{name} must hold finite numbers only")
            normalizer.statistics[name] = np.array(values, dtype=np.float64)
        _check_statistics(normalizer.statistics, source)
        normalizer.n_features = n_features
        return normalizer

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path, *, n_features: int | None = None) -> Normalizer:
        """Read a normalizer written by :meth:`save`.

        Args:
            path: the JSON file.
            n_features: when given, the feature count the caller's data has.

        Raises:
            DataNotFoundError: no such file.
            ConfigError: not valid JSON, invalid content, or another feature count.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataNotFoundError(f"normalizer file {path} does not exist") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON: {error}") from None
        normalizer = cls.from_dict(obj, source=str(path))
        if n_features is not None and normalizer.n_features not in (None, n_features):
            raise ConfigError(
                f"{path}: the normalizer expects {normalizer.n_features} features; the data has "
                f"{n_features}"
            )
        return normalizer

    def to_module(self) -> NormalizerModule:
        """The same transform as a torch module over padded slates (:class:`NormalizerModule`)."""
        if self.kind in _STATISTICS:
            if not self.is_fitted:
                raise LtrError(f"a {self.kind!r} normalizer must be fitted before to_module()")
            shift, inv_scale = self.affine()
            return NormalizerModule(self.kind, shift, inv_scale, n_features=self.n_features)
        return NormalizerModule(self.kind, n_features=self.n_features)


def _check_statistics(statistics: dict[str, np.ndarray], source: str) -> None:
    """A negative std or max below min cannot come from fit: the file was edited or corrupted."""
    if "std" in statistics and (bad := np.flatnonzero(statistics["std"] < 0)).size:
        raise ConfigError(
            f"{source}: statistics.std must be non-negative; feature {bad[0] + 1} has "
            f"{statistics['std'][bad[0]]}"
        )
    if "min" in statistics and (bad := np.flatnonzero(statistics["max"] < statistics["min"])).size:
        low, high = statistics["min"][bad[0]], statistics["max"][bad[0]]
        raise ConfigError(
            f"{source}: statistics.max must be >= statistics.min; feature {bad[0] + 1} has "
            f"min {low} and max {high}"
        )


def _check_finite(features: np.ndarray) -> None:
    """NaN or inf would poison the statistics (and cannot be saved as JSON)."""
    finite = np.isfinite(features)
    if not finite.all():
        column = int(np.flatnonzero(~finite.all(axis=0))[0])
        doc = int(np.flatnonzero(~finite[:, column])[0])
        raise ShapeError(
            f"features must be finite to fit a normalizer; feature {column + 1} (LETOR id) "
            f"holds {features[doc, column]} at document index {doc}"
        )


def _is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _normalize_per_query(x: np.ndarray, offsets: np.ndarray, kind: str) -> np.ndarray:
    """Per-query min-max or z-score of float64 ``x [n_docs, F]``; returns float32."""
    if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != x.shape[0]:
        raise ShapeError(
            f"query_offsets must run from 0 to n_docs={x.shape[0]}; got {offsets.shape} array"
        )
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    starts = offsets[:-1][nonempty]
    if starts.size == 0:
        return np.zeros(x.shape, dtype=np.float32)
    owner = np.repeat(np.arange(starts.size), lengths[nonempty])  # query of each document
    low = np.minimum.reduceat(x, starts, axis=0)
    high = np.maximum.reduceat(x, starts, axis=0)
    if kind == "query_minmax":
        shift, inv_scale = low, _reciprocal(high - low)
    else:
        count = lengths[nonempty, None].astype(np.float64)
        shift = np.add.reduceat(x, starts, axis=0) / count
        std = np.sqrt(np.add.reduceat((x - shift[owner]) ** 2, starts, axis=0) / count)
        # constancy is decided exactly (min == max), never by a rounded std
        inv_scale = np.where(high > low, _reciprocal(std), 0.0)
    out: np.ndarray = ((x - shift[owner]) * inv_scale[owner]).astype(np.float32)
    return out


class NormalizerModule(nn.Module):
    """A :class:`Normalizer` as float32 torch ops over padded slates, ready for ONNX export.

    ``forward(features [B, L, F], mask [B, L] | None) -> [B, L, F]``. The per-query kinds compute
    their min/max/mean/std over real documents only, so padding never changes a real output;
    padded positions come out as 0 for every kind. There is no data-dependent Python control flow
    (the kind is fixed at construction), so ``torch.onnx.export`` can trace it.

    Args:
        kind: one of :data:`NORMALIZER_KINDS`.
        shift: float64 ``[F]`` subtracted by the global kinds.
        inv_scale: float64 ``[F]`` multiplier of the global kinds (0 for constant features).
        n_features: the fitted feature count ``F``; None accepts any width.
    """

    def __init__(
        self,
        kind: str,
        shift: np.ndarray | None = None,
        inv_scale: np.ndarray | None = None,
        *,
        n_features: int | None = None,
    ) -> None:
        super().__init__()
        self.kind = _check_kind(kind, "normalization")
        self.n_features = n_features
        self.shift: ShiftModule | None
        self.inv_scale: torch.Tensor | None
        if kind in _STATISTICS:
            assert shift is not None and inv_scale is not None
            self.shift = ShiftModule(shift, signed_log=kind == "log1p_standard")
            self.register_buffer("inv_scale", torch.tensor(inv_scale, dtype=torch.float32))
        else:
            self.shift = self.inv_scale = None

    def extra_repr(self) -> str:
        """What ``print(model)`` shows beside the class name: the normalization kind."""
        return f"kind={self.kind!r}"

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalize ``features [B, L, F]``; ``mask [B, L]`` marks real documents (None = all)."""
        # F is static when exported, so this check is plain Python at trace time, not a graph op
        if self.n_features is not None and features.shape[-1] != self.n_features:
            raise ShapeError(
                f"the normalizer was fitted on {self.n_features} features; got {features.shape[-1]}"
            )
        x = features.to(torch.float32)
        real = torch.ones_like(x[..., :1], dtype=torch.bool) if mask is None else mask.unsqueeze(-1)
        if self.kind == "none":
            y = x
        elif self.kind in _QUERY_KINDS:
            y = self._per_query(x, real)
        else:
            assert self.shift is not None and self.inv_scale is not None
            y = self.shift(x) * self.inv_scale
        return torch.where(real, y, torch.zeros_like(y))

    def _per_query(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Per-query min-max or z-score over the real documents of each list."""
        inf = torch.full_like(x, float("inf"))
        low = torch.where(real, x, inf).amin(dim=1, keepdim=True)
        high = torch.where(real, x, -inf).amax(dim=1, keepdim=True)
        zero = torch.zeros_like(low)
        if self.kind == "query_minmax":
            shift = low
            spread = high - low
            inv_scale = torch.where(spread > 0, 1.0 / spread, zero)
        else:
            # distances to the query's minimum (exact for values within a factor of 2 of it):
            # a float32 sum of raw values near 1e6 would lose everything below ~64
            count = real.to(x.dtype).sum(dim=1, keepdim=True).clamp(min=1.0)
            floor = torch.where(high >= low, low, zero)  # a list without real documents: 0
            offset = torch.where(real, x - floor, torch.zeros_like(x))
            mean = offset.sum(dim=1, keepdim=True) / count
            deviation = torch.where(real, offset - mean, torch.zeros_like(x))
            std = torch.sqrt((deviation * deviation).sum(dim=1, keepdim=True) / count)
            inv_scale = torch.where(high > low, 1.0 / std, zero)
            return deviation * inv_scale
        return (x - shift) * inv_scale


def _split(values: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 ``values`` as float32 ``hi + lo``: ``hi`` rounded, ``lo`` the rounding error."""
    hi = values.astype(np.float32)
    lo = (values - hi.astype(np.float64)).astype(np.float32)
    return torch.from_numpy(hi), torch.from_numpy(lo)


def _log1p(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + x)`` accurate to a few float32 ulps with ``Log`` and ``Add`` alone.

    ONNX has no log1p: the exporter writes ``Log(1 + x)``, which returns 0 for ``|x|`` below
    6e-8. With ``u = 1 + x`` rounded, ``log(u) * x / (u - 1)`` cancels that rounding.
    """
    u = 1.0 + x
    rounded = u - 1.0
    exact = rounded == 0
    return torch.where(exact, x, torch.log(u) * (x / torch.where(exact, 1.0, rounded)))


class ShiftModule(nn.Module):
    """``x - shift`` per feature in float32, as close to the float64 result as float32 allows.

    ``shift`` (float64 ``[F]``) is kept as two float32 parts ``hi + lo`` and subtracted as
    ``(x - hi) - lo``. With ``signed_log``, the input is ``sign(x) * log1p(|x|)`` first. There,
    where ``x`` and ``shift`` have the same sign and ``|x| >= c / 2`` (``c = expm1(|shift|)``),
    the two terms cancel, so the module computes ``sign(x) * log1p((|x| - c) / (1 + c))``, the
    log of a ratio: ``log1p(|x|) - |shift| = log((1 + |x|) / (1 + c))``. Elsewhere the result is
    at least ``log 2`` away from 0 and the direct formula is exact enough.

    Args:
        shift: float64 ``[F]``.
        signed_log: apply the signed log to the input before subtracting.
    """

    # beyond this |shift|, expm1 overflows float32; values so far out never cancel in practice
    _MAX_LOG_SHIFT = 80.0

    def __init__(self, shift: np.ndarray, *, signed_log: bool = False) -> None:
        super().__init__()
        shift = np.asarray(shift, dtype=np.float64)
        self.signed_log = signed_log
        self.hi: torch.Tensor
        self.lo: torch.Tensor
        hi, lo = _split(shift)
        self.register_buffer("hi", hi)
        self.register_buffer("lo", lo)
        if signed_log:
            magnitude = np.abs(shift)
            c = np.expm1(np.minimum(magnitude, self._MAX_LOG_SHIFT))
            c_hi, c_lo = _split(c)
            self.c_hi: torch.Tensor
            self.c_lo: torch.Tensor
            self.one_plus_c: torch.Tensor
            self.negative_shift: torch.Tensor
            self.ratio_ok: torch.Tensor
            self.register_buffer("c_hi", c_hi)
            self.register_buffer("c_lo", c_lo)
            self.half_c: torch.Tensor
            self.register_buffer("one_plus_c", torch.from_numpy((1.0 + c).astype(np.float32)))
            self.register_buffer("half_c", torch.from_numpy((c / 2).astype(np.float32)))
            self.register_buffer("negative_shift", torch.from_numpy(shift < 0))
            self.register_buffer("ratio_ok", torch.from_numpy(magnitude <= self._MAX_LOG_SHIFT))

    def extra_repr(self) -> str:
        """What ``print(model)`` shows: whether the signed log comes first."""
        return f"signed_log={self.signed_log}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., F]`` float32 in, ``[..., F]`` float32 out."""
        if not self.signed_log:
            return (x - self.hi) - self.lo
        negative = x < 0
        size = torch.abs(x)
        sign = torch.where(negative, -1.0, 1.0)
        direct = (sign * _log1p(size) - self.hi) - self.lo
        ratio = _log1p(((size - self.c_hi) - self.c_lo) / self.one_plus_c)
        cancels = (negative == self.negative_shift) & self.ratio_ok & (size >= self.half_c)
        return torch.where(cancels, sign * ratio, direct)
