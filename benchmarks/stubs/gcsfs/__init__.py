"""Stand-in for gcsfs in the benchmark-only environment (benchmarks/allrank_env.sh).

``allrank.utils.file_utils`` (imported by allRank's losses through ``dataset_loading``) does
``import gcsfs`` for Google Cloud Storage paths, which the loss benchmark never uses; allRank pins
an old gcsfs with its own dependency tree. Only the import has to succeed.
"""
