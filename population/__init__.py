"""population: the one owner of a run's state — genome store (git), archive (Parquet), selection, lineage.

Public API (PopulationActor lives in population.actor, so importing this package doesn't import Ray):

    pop = Population.open(run_dir, seed_source, PopulationConfig(...))   # create or resume
    genome, is_new = pop.add(source, parents, operator, description, generation, meta=None, created=None)
    pop.genome(id_or_prefix) -> Genome          # UnknownGenome / AmbiguousGenome (GenomeIdError)
    pop.record(genome_id, result, kind="child", generation=g, node="", worker="",
               started=iso, finished=iso, llm={"model", "input_tokens", "output_tokens", "cost_usd"})
    pop.archive() -> DataFrame; pop.fitness(id) -> Fitness; pop.noise_sigma() -> float | None
    pop.select_parents(k, rng) -> list[Genome]; pop.survivors(); pop.best(); pop.repeat_candidates(n)
    pop.lineage(id) -> Lineage; pop.merge_base(a, b) -> Genome | None
    pop.export_results_tsv(path); pop.summary() -> dict; pop.close()
"""

from population.errors import AmbiguousGenome, GenomeIdError, InvalidGenome, RunDirError, UnknownGenome
from population.lineage import Lineage, LineageStep
from population.messages import Fitness, Genome, PopulationConfig
from population.population import Population

__all__ = [
    "AmbiguousGenome",
    "Fitness",
    "Genome",
    "GenomeIdError",
    "InvalidGenome",
    "Lineage",
    "LineageStep",
    "Population",
    "PopulationConfig",
    "RunDirError",
    "UnknownGenome",
]
