"""asv benchmarks of fastbackprop: both backends on the workloads of fastbackprop.bench.

The workloads come from :data:`fastbackprop.bench.WORKLOADS`, the registry
that also drives ``fastbackprop bench``.
"""
