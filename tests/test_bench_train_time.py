from picsearch.bench.train_time import bench_kernels


def test_kernel_bench_times_the_baseline_then_the_projects_version_of_each_kernel() -> None:
    times = bench_kernels(width=64, pooled=16, rows=8, calls=4)
    assert list(times) == ["dropout", "AdamW step", "distinct rows", "beta-binomial log pmf"]
    assert [list(pair)[1] for pair in times.values()] == [
        "SeededDropout", "adamw (fused)", "unique_rows", "betabinom_logpmf"
    ]
    assert all(ms > 0 for pair in times.values() for ms in pair.values())
