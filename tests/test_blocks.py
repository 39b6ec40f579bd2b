from ouroboros.blocks import completed_blocks, plan_blocks


def test_plan_from_scratch():
    assert plan_blocks(6, 3) == [(0, 2), (3, 5), (6, 6)]
    assert plan_blocks(1000, 1000) == [(0, 999), (1000, 1000)]
    assert plan_blocks(4, 1) == [(g, g) for g in range(5)]


def test_plan_reuses_existing_blocks():
    assert plan_blocks(10, 3, {(0, 2), (3, 5), (6, 6)}) == [(0, 2), (3, 5), (6, 6), (7, 9), (10, 10)]
    assert plan_blocks(4, 3, {(0, 2), (3, 5)}) == [(0, 2), (3, 4)]  # a block past G is not used


def test_completed_blocks_needs_the_block_jobs_three_files(tmp_path):
    for name, files in {"gens0-2": ["state.npz", "models.npz", "chain.csv"], "gens3-5": ["state.npz"], "gen6": []}.items():
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f).write_text("x")
    assert completed_blocks(tmp_path) == {(0, 2)}
    assert completed_blocks(tmp_path / "absent") == set()
