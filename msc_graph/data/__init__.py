"""Benchmark data: datasets (registry, loaders, cache) and user profiles."""

from msc_graph.data.datasets import (
    DATASETS,
    DatasetError,
    LoadedDataset,
    default_cache_dir,
    load_dataset_problems,
    load_problem_file,
)
from msc_graph.data.profiles import (
    ProfileError,
    UserProfile,
    builtin_profiles,
    generate_profiles,
    load_profiles,
)

__all__ = [
    "DATASETS",
    "DatasetError",
    "LoadedDataset",
    "ProfileError",
    "UserProfile",
    "builtin_profiles",
    "default_cache_dir",
    "generate_profiles",
    "load_dataset_problems",
    "load_problem_file",
    "load_profiles",
]
