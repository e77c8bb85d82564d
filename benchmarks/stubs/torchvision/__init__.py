"""Stand-in for torchvision in the benchmark-only environment (benchmarks/allrank_env.sh).

allRank's ``allrank.data.dataset_loading`` imports ``torchvision.transforms.Compose`` at import
time for its data pipeline, which the loss benchmark never uses; allRank's pinned torchvision does
not build against the torch we benchmark. Only the import has to succeed.
"""
