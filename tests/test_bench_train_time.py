from picsearch.bench.train_time import bench_dropout


def test_dropout_bench_times_both_layers() -> None:
    times = bench_dropout(width=64, rows=8, calls=8)
    assert set(times) == {"torch.nn.Dropout", "SeededDropout"}
    assert all(ms > 0 for ms in times.values())
