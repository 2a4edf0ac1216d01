"""One study's request, resolved once: the data, the encoder, the objective's spec, the clusterers, the
worker count — checked before anything is written — and, once computed, the embedded vectors, the
study's reduction cache and its evaluation space. It travels as this object through the study; for
worker processes it serialises itself (``to_job``: JSON and the vectors beside it) and comes back
whole in the child (``from_job``), so nothing is looked up again by name down the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from selector.stages.data import Dataset, load_dataset
from selector.stages.embedding import Embeddings, check_embed_request, embed
from selector.stages.objective import DEFAULT_OBJECTIVE, OBJECTIVES, EvalSpace, ObjectiveSpec, get_objective

MIN_TUNE_POINTS = 10
VECTORS_FILE = "vectors.npz"  # the embedded vectors a worker reads instead of embedding again


@dataclass
class StudyRequest:
    """A checked study request. Make one with ``StudyRequest.resolve``; ``embed()`` and
    ``build_eval_space()`` fill in what the trials share."""

    data: Dataset | None  # None in a worker process, which reads the caller's vectors instead
    dataset: str  # the data set as the user named it (what the runs log)
    encoder: str
    checkpoint: str
    n_trials: int
    timeout: float
    seed: int
    clusterers: list[str]
    objective: ObjectiveSpec
    compare: tuple[ObjectiveSpec, ...]
    workers: int
    storage: str
    study_name: str
    labels: str
    reproducible: bool = False  # several workers in batches asked of one sampler (selector.study.batches)
    embedded: Embeddings | None = field(default=None, repr=False)
    eval_space: EvalSpace | None = field(default=None, repr=False)
    cache: object = field(default=None, repr=False)  # the study's ReductionCache, once embedded

    @classmethod
    def resolve(cls, dataset: str | Dataset = "digits", encoder: str = "raw", checkpoint: str = "",
                n_trials: int = 30, timeout: float = 0.0, seed: int = 0, clusterers: str | list[str] = "all",
                study_name: str = "", storage: str = "", objective: str | ObjectiveSpec = DEFAULT_OBJECTIVE,
                workers: int = 0, compare: str = "", labels: str = "auto",
                reproducible: bool = False) -> "StudyRequest":
        """Check every parameter and load the data; user errors raise ``ValueError`` naming the parameter."""
        from selector.stages.clustering import parse_clusterers
        from selector.study.session import check_workers

        if int(n_trials) < 1:
            raise ValueError(f"`n_trials` must be an int >= 1; got {n_trials}.")
        if float(timeout) < 0:
            raise ValueError(f"`timeout` must be >= 0 seconds (0 = none); got {timeout}.")
        names = parse_clusterers(clusterers if isinstance(clusterers, str) else ",".join(clusterers))
        spec = objective if isinstance(objective, ObjectiveSpec) else get_objective(objective)
        compared = tuple(OBJECTIVES.values()) if str(compare).strip() == "all" else \
            tuple(get_objective(n.strip()) for n in str(compare).split(",") if n.strip())
        resolved_workers = check_workers(workers, n_trials, storage)
        if storage:  # an untracked search with no storage never imports MLflow
            from selector.study.tracking import warn_if_password_logged

            warn_if_password_logged("storage", storage)
        data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, labels)
        check_embed_request(data, encoder, checkpoint)
        if len(data) < MIN_TUNE_POINTS:
            raise ValueError(f"dataset {data.name!r} has {len(data)} points; clustering needs at least "
                             f"{MIN_TUNE_POINTS}.")
        return cls(data=data, dataset=dataset if isinstance(dataset, str) else data.name, encoder=encoder,
                   checkpoint=checkpoint, n_trials=int(n_trials), timeout=float(timeout), seed=int(seed),
                   clusterers=names, objective=spec, compare=compared, workers=resolved_workers,
                   storage=storage, study_name=study_name, labels=labels, reproducible=bool(reproducible))

    # ------------------------------------------------------------------ what the trials share
    def embed(self, progress: bool = True) -> Embeddings:
        """The data set's vectors (cached), refused when too few could be embedded or all are equal;
        names the study when no name was given. ``progress``: a progress bar while embedding."""
        if self.embedded is None:
            embedded = embed(self.data, self.encoder, checkpoint=self.checkpoint, progress=progress)
            self._adopt(embedded)
        return self.embedded

    def _adopt(self, embedded: Embeddings) -> None:
        name = embedded.dataset
        if len(embedded.vectors) < MIN_TUNE_POINTS:
            raise ValueError(f"only {len(embedded.vectors)} of {name!r}'s points could be embedded; "
                             f"clustering needs at least {MIN_TUNE_POINTS}.")
        if np.ptp(embedded.vectors, axis=0).max() == 0:
            raise ValueError(f"every vector of {name!r} under encoder {self.encoder!r} is the same: nothing to cluster.")
        self.embedded = embedded
        self.cache = reduction_cache(embedded)
        self.study_name = self.study_name or f"{name}-{self.encoder}-{self.objective.name}-{embedded.key[:8]}"

    def build_eval_space(self) -> EvalSpace:
        """The study's evaluation space, built once (through the reduction cache, which its workers share)."""
        if self.eval_space is None:
            from selector.stages.objective import build_eval_space

            self.eval_space = build_eval_space(self.embed().vectors, self.cache, self.seed)
        return self.eval_space

    def context(self):
        """What every trial of this process shares (``selector.study.trials.SearchContext``)."""
        from selector.study.trials import SearchContext

        embedded = self.embed()
        return SearchContext(vectors=embedded.vectors, labels=embedded.labels, clusterers=self.clusterers,
                             seed=self.seed, cache=self.cache, objective=self.objective, compare=self.compare,
                             eval_space_=self.eval_space)

    @property
    def identity(self) -> dict:
        """What a study of this name must hold to be resumed by this request."""
        return {"dataset": self.embedded.dataset, "encoder": self.encoder, "embedding_key": self.embedded.key,
                "objective": self.objective.name}

    def params(self) -> dict:
        """The study run's MLflow params."""
        return {"dataset": self.dataset, "encoder": self.encoder, "checkpoint": self.checkpoint,
                "n_trials": self.n_trials, "seed": self.seed, "clusterers": ",".join(self.clusterers),
                "storage": self.storage, "study_name": self.study_name, "objective": self.objective.name,
                "workers": self.workers, "labels": self.labels, "reproducible": self.reproducible}

    # ------------------------------------------------------------------ worker processes
    def to_job(self, folder: Path, tracked: bool = True) -> dict:
        """The request as JSON for worker processes, its embedded vectors written into ``folder``
        beside it (a worker neither loads the data set nor embeds)."""
        embedded = self.embed()
        np.savez(Path(folder) / VECTORS_FILE, vectors=embedded.vectors, ids=np.asarray(embedded.ids).astype(str),
                 **({} if embedded.labels is None else {"labels": _plain(embedded.labels)}))
        return {"dataset": self.dataset, "dataset_name": embedded.dataset, "encoder": self.encoder,
                "encoder_identity": embedded.encoder, "embedding_key": embedded.key, "checkpoint": self.checkpoint,
                "n_trials": self.n_trials, "timeout": self.timeout, "seed": self.seed,
                "clusterers": self.clusterers, "objective": self.objective.name,
                "compare": [c.name for c in self.compare], "workers": self.workers, "storage": self.storage,
                "study_name": self.study_name, "labels": self.labels, "tracked": bool(tracked)}

    @classmethod
    def from_job(cls, job: dict, folder: Path) -> "StudyRequest":
        """The request a worker process was given (``to_job``), its vectors read back, its objective
        resolved here once for this process."""
        with np.load(Path(folder) / VECTORS_FILE, allow_pickle=False) as stored:
            embedded = Embeddings(vectors=stored["vectors"], ids=stored["ids"],
                                  labels=stored["labels"] if "labels" in stored else None,
                                  dataset=job["dataset_name"], encoder=job["encoder_identity"],
                                  cache_hit=True, key=job["embedding_key"])
        request = cls(data=None, dataset=job["dataset"], encoder=job["encoder"], checkpoint=job["checkpoint"],
                      n_trials=job["n_trials"], timeout=job["timeout"], seed=job["seed"],
                      clusterers=list(job["clusterers"]), objective=get_objective(job["objective"]),
                      compare=tuple(get_objective(n) for n in job["compare"]), workers=job["workers"],
                      storage=job["storage"], study_name=job["study_name"], labels=job["labels"])
        request._adopt(embedded)
        return request

    def with_encoder(self, encoder: str) -> "StudyRequest":
        """The same request for another encoder (``select``), checked; nothing embedded or built yet."""
        check_embed_request(self.data, encoder, self.checkpoint)
        return replace(self, encoder=encoder, study_name="", embedded=None, eval_space=None, cache=None)


def _plain(labels: np.ndarray) -> np.ndarray:
    """Labels as an array NumPy stores without pickle: numbers stay numbers, anything else is text."""
    labels = np.asarray(labels)
    return labels.astype(str) if labels.dtype == object else labels


def reduction_cache(embedded: Embeddings):
    """The study's reductions, in memory and under the cache root (shared by its workers)."""
    from selector.cache import cache_path
    from selector.stages.reduction import ReductionCache

    return ReductionCache(cache_path("reductions"), embedded.key)


def study_eval_space(embedded: Embeddings, seed: int):
    """The evaluation space a study of ``embedded`` built (read back from the reduction cache)."""
    from selector.stages.objective import build_eval_space

    return build_eval_space(embedded.vectors, reduction_cache(embedded), int(seed))
