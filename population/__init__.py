"""population: the one owner of a run's state — genome store (git), archive (Parquet), selection, lineage.

Public API (PopulationActor lives in population.actor, so importing this package doesn't import Ray;
it takes the same constructor arguments: run_dir: str, seed_source, config):

    pop = Population.open(run_dir, seed_source, PopulationConfig(...))  # create, or resume (seed may be None)
    view = Population.read(run_dir, config=None)  # read-only snapshot of a run, live or finished: no lock
    Population(run_dir, seed_source, config, ancestors=(ImportedGenome, ...))  # a new run whose seed has an
        # imported history: committed as its ancestors (operator "imported"), never trained or scored here
    genome, is_new = pop.add(source, parents, operator, description, generation, meta=None, created=None)
        # is_new False: an identical source exists (that genome is returned, nothing is committed);
        # InvalidGenome: the source breaks the genome contract; parents may be id prefixes
    pop.genome(id_or_prefix) -> Genome   # UnknownGenome / AmbiguousGenome, both GenomeIdError(LookupError)
    pop.seed() -> Genome
    pop.record(genome_id, result, kind="child", generation=g, node="", worker="", started=iso, finished=iso,
               llm=LLMSpend | None)
    pop.archive() -> DataFrame       pop.fitness(id) -> Fitness      pop.noise_sigma() -> float | None
    pop.select_parents(k, rng) -> list[Genome]     pop.survivors() -> list[Genome]     pop.best() -> Genome | None
    pop.repeat_candidates(n) -> list[str]          pop.lineage(id) -> Lineage      pop.merge_base(a, b)
    pop.export_results_tsv(path) -> Path           pop.summary() -> RunSummary     pop.close() / with-block
"""

from population.errors import AmbiguousGenome, GenomeIdError, InvalidGenome, RunDirError, UnknownGenome
from population.lineage import Lineage, LineageStep
from population.messages import Fitness, Genome, ImportedGenome, LLMSpend, PopulationConfig, RunSummary
from population.population import Population

__all__ = [
    "AmbiguousGenome",
    "Fitness",
    "Genome",
    "GenomeIdError",
    "ImportedGenome",
    "InvalidGenome",
    "Lineage",
    "LineageStep",
    "LLMSpend",
    "Population",
    "PopulationConfig",
    "RunDirError",
    "RunSummary",
    "UnknownGenome",
]
