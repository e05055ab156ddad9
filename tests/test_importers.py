"""Importers: real files in ../shared/data (skipped when absent), the MESS+ fixture, and every bad-input case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sim import cli
from sim.errors import UserError
from sim.trace.importers.arrivals import read_arrivals
from sim.trace.importers.profiles import ProfileCurve, load_profiles
from sim.trace.format import load_trace, read_table

DATA = Path(__file__).parents[1].parent / "shared" / "data"
FIXTURES = Path(__file__).parent / "fixtures"
MESSPLUS_CSV = FIXTURES / "messplus_reference.csv"
LONG_CSV = FIXTURES / "long_outcomes.csv"
QUESTIONS = FIXTURES / "long_questions.jsonl"
EMBEDLLM_CSV = FIXTURES / "embedllm_train.csv"
MARTIAN_CSV = FIXTURES / "routerbench_martian.csv"

RB_LABELS = DATA / "routerbench_subset" / "routerbench_arc_mbpp_winogrande_labels.csv"
RL_MMLU = DATA / "routellm_evals" / "routellm_mmlu_labels.csv"
RL_GSM8K = DATA / "routellm_evals" / "routellm_gsm8k_labels.csv"
AZURE = DATA / "azure_llm_2023"
V2_CSV = DATA / "mlenergy_v2" / "mlenergy_v2_llm_text_generation.csv"
V3_DIR = DATA / "mlenergy_v3"
H200_DIR = DATA / "h200_llama_profile"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent (../shared/data)")

RB5 = ["mistral-7b-chat", "WizardLM-13B-V1.2", "mixtral-8x7b-chat", "Yi-34B-Chat", "llama-2-70b-chat"]
RB5_MAP = ("mistral-7b-chat=mistralai/Mistral-7B-Instruct-v0.3,WizardLM-13B-V1.2=microsoft/Phi-3-medium-4k-instruct,"
           "mixtral-8x7b-chat=mistralai/Mixtral-8x7B-Instruct-v0.1,Yi-34B-Chat=google/gemma-2-27b-it,"
           "llama-2-70b-chat=meta-llama/Meta-Llama-3.1-70B-Instruct")


def run(argv, capsys) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def ok(argv, capsys) -> tuple[str, str]:
    rc, out, err = run(argv, capsys)
    assert rc == 0, err
    return out, err


def bad(argv, capsys, *needles: str) -> str:
    """The command must fail with exit 2 and exactly one stderr line that mentions every needle."""
    rc, out, err = run(argv, capsys)
    assert rc == 2, (rc, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])
    return lines[0]


def info_json(path, capsys) -> dict:
    out, _ = ok(["trace", "info", path, "--json"], capsys)
    return json.loads(out)


# ------------------------------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def azure(tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip(f"real data folder {DATA} is absent (../shared/data)")
    d = tmp_path_factory.mktemp("azure")
    for kind in ("code", "conv"):
        assert cli.main(["trace", "import", "arrivals", str(AZURE / f"AzureLLMInferenceTrace_{kind}.csv"),
                         "--preset", "azure", "-o", str(d / f"{kind}.parquet")]) == 0
    return d


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip(f"real data folder {DATA} is absent (../shared/data)")
    out = tmp_path_factory.mktemp("prof") / "profiles.parquet"
    assert cli.main(["profile", "import", "mlenergy", str(V2_CSV), str(V3_DIR), str(H200_DIR), "-o", str(out)]) == 0
    return out


@needs_data
def test_azure_rates(azure, capsys):
    code = info_json(azure / "code.parquet", capsys)
    conv = info_json(azure / "conv.parquet", capsys)
    assert set(code) == {"rows", "span_s", "rate_per_s", "interarrival_cv", "peak_rate_1s", "models", "groups", "order",
                         "fractional_sat", "provenance"}
    assert code["rows"] == 8819 and conv["rows"] == 19366
    assert abs(code["rate_per_s"] - 2.57) <= 0.05
    assert abs(conv["rate_per_s"] - 5.53) <= 0.05
    assert code["rate_per_s"] == pytest.approx(code["rows"] / code["span_s"])
    assert 12 < code["interarrival_cv"] < 14 and 1.0 < conv["interarrival_cv"] < 1.2  # README: CV 13 and 1.1
    assert code["peak_rate_1s"] > conv["peak_rate_1s"] > 5
    assert code["models"] == {} and code["groups"] == {}
    assert code["provenance"]["preset"] == "azure" and code["provenance"]["out_of_order_rows"] == 0
    df, _ = read_arrivals(azure / "code.parquet")
    assert df.columns == ["arrival_s", "prompt_tokens", "output_tokens"]
    assert df["arrival_s"][0] == 0.0 and df["prompt_tokens"].dtype == pl.Int64
    src = pl.read_csv(AZURE / "AzureLLMInferenceTrace_code.csv")
    assert df["output_tokens"].sum() == src["GeneratedTokens"].sum()


@needs_data
def test_routerbench_accuracies_match_source(tmp_path, capsys):
    out = tmp_path / "rb.parquet"
    _, err = ok(["trace", "import", "outcomes", RB_LABELS, "--preset", "routerbench", "-o", out], capsys)
    assert "dropped 14 of 3164" in err
    src = pl.read_csv(RB_LABELS, infer_schema_length=None)
    sat_cols = [c for c in src.columns if c.startswith("correct__")]
    kept = src.filter(pl.all_horizontal(pl.col(sat_cols).is_not_null()))
    df, meta = read_table(out)
    assert df.height == kept.height == 3150
    models = meta["models"]
    assert sorted(models) == sorted(c[len("correct__"):] for c in sat_cols)
    info = info_json(out, capsys)
    for m in models:
        assert df[f"sat__{m}"].mean() == kept[f"correct__{m}"].mean()
        assert info["models"][m]["accuracy"] == kept[f"correct__{m}"].mean()
        assert info["models"][m]["mean_cost"] == pytest.approx(kept[f"cost_usd__{m}"].mean(), rel=1e-12)
    means = [info["models"][m]["mean_cost"] for m in models]
    assert means == sorted(means)  # cheapest first
    assert set(info["groups"]) == {"arc-challenge", "mbpp", "winogrande"}
    assert df["text"].null_count() == 0 and df["source_id"].to_list() == kept["sample_id"].to_list()
    assert meta["provenance"]["dropped_rows"] == 14 and meta["cost_unit"] == "USD"
    assert (df["latency_s__gpt-4-1106-preview"] == 0).all()


@needs_data
def test_routellm_accuracies_match_source(tmp_path, capsys):
    mmlu, gsm = tmp_path / "mmlu.parquet", tmp_path / "gsm.parquet"
    ok(["trace", "import", "outcomes", RL_MMLU, "--preset", "routellm", "-o", mmlu], capsys)
    ok(["trace", "import", "outcomes", RL_GSM8K, "--preset", "routellm", "-o", gsm], capsys)
    for path, src_path in ((mmlu, RL_MMLU), (gsm, RL_GSM8K)):
        src = pl.read_csv(src_path, infer_schema_length=None)
        info = info_json(path, capsys)
        assert info["rows"] == src.height
        assert list(info["models"]) == ["Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
        for m in info["models"]:
            assert info["models"][m]["accuracy"] == src[f"correct__{m}"].cast(pl.Float64).mean()
    assert len(info_json(mmlu, capsys)["groups"]) == 57
    g = info_json(gsm, capsys)
    assert list(g["groups"]) == ["gsm8k"]
    df, _ = read_table(gsm)
    assert df["text"].null_count() == 0


@needs_data
def test_profiles_real(profiles, capsys):
    df = load_profiles(profiles)
    assert {"model_id", "gpu", "num_gpus", "concurrency", "energy_per_token_j", "itl_s", "source",
            "prefill_s_per_token", "prefill_j_per_token"} <= set(df.columns)
    assert set(df["gpu"].unique()) >= {"A100", "H100", "B200", "H200"}
    c = ProfileCurve.select(df, "meta-llama/Llama-3.1-8B-Instruct", "H100")
    assert c.num_gpus == 1 and c.concurrency[0] == 8
    # between batch 8 and 16 the value is interpolated linearly; below/above, clamped
    e8, e16 = c.energy_per_token_j(8), c.energy_per_token_j(16)
    assert c.energy_per_token_j(12) == pytest.approx((e8 + e16) / 2)
    assert c.energy_per_token_j(1) == e8 and c.itl_s(10**6) == c.itl[-1]
    h = ProfileCurve.select(df, "llama-3.1-8b", "H200")
    assert h.variant == "ctx1024" and h.energy_per_token_j(1) == pytest.approx(0.475805 * 2.458 / 0.475805, rel=1e-3)
    assert h.prefill_s_per_token == pytest.approx((15.615704 + 56.332201) / 1000 / 2560)
    one_b = h.scale_from(0.39, model_id="llama-3.2-1b")
    assert one_b.energy_per_token_j(64) == pytest.approx(0.39 * h.energy_per_token_j(64))
    with pytest.raises(UserError, match="llama-3.2-1b"):
        ProfileCurve.select(df, "llama-3.2-1b", "H100")
    out, _ = ok(["profile", "show", profiles, "--model", "Mixtral-8x7B-Instruct-v0.1", "--gpu", "H100", "--json"], capsys)
    assert json.loads(out)["num_gpus"] == 4


@needs_data
def test_compose_routerbench_azure_profile(tmp_path, azure, profiles, capsys):
    rb = tmp_path / "rb5.parquet"
    ok(["trace", "import", "outcomes", RB_LABELS, "--preset", "routerbench", "--models", ",".join(RB5), "-o", rb], capsys)
    args = ["trace", "compose", "--outcomes", rb, "--arrivals", azure / "conv.parquet", "--assign", "sample",
            "--seed", "7", "--profile", profiles, "--gpu", "H100", "--map", RB5_MAP]
    ok(args + ["-o", tmp_path / "a.parquet"], capsys)
    ok(args + ["-o", tmp_path / "b.parquet"], capsys)
    a, meta = read_table(tmp_path / "a.parquet")
    b, _ = read_table(tmp_path / "b.parquet")
    assert a.equals(b)  # same seed, same trace
    t = load_trace(tmp_path / "a.parquet")
    assert t.cost_unit == "J" and t.n == 3154 and sorted(t.models) == sorted(RB5)  # 10 rows lack these labels
    assert np.all(t.outcomes.energy_j > 0) and np.all(t.outcomes.latency_s > 0)
    assert meta["provenance"]["derived"]["models"]["Yi-34B-Chat"]["model_id"] == "google/gemma-2-27b-it"
    info = info_json(tmp_path / "a.parquet", capsys)
    for g in info["groups"].values():  # the acceptance: llama-2-70b costlier and less accurate than Yi-34B
        assert g["models"]["llama-2-70b-chat"]["mean_cost"] > g["models"]["Yi-34B-Chat"]["mean_cost"]
        assert g["models"]["llama-2-70b-chat"]["accuracy"] < g["models"]["Yi-34B-Chat"]["accuracy"]
    ok(args[:-8] + ["--seed", "8", "-o", tmp_path / "c.parquet"], capsys)
    c, _ = read_table(tmp_path / "c.parquet")
    assert not c["source_request_id"].equals(a["source_request_id"])


@needs_data
def test_compose_profile_missing_model_names_it(tmp_path, azure, profiles, capsys):
    rb = tmp_path / "rb.parquet"
    ok(["trace", "import", "outcomes", RB_LABELS, "--preset", "routerbench", "--models", "mistral-7b-chat,Yi-34B-Chat",
        "-o", rb], capsys)
    bad(["trace", "compose", "--outcomes", rb, "--arrivals", azure / "code.parquet", "-o", tmp_path / "x.parquet",
         "--profile", profiles, "--gpu", "H100", "--map", "mistral-7b-chat=mistralai/Mistral-7B-Instruct-v0.3"],
        capsys, "Yi-34B-Chat", "--map")
    assert not (tmp_path / "x.parquet").exists()


# ------------------------------------------------------------------------------------------ fixtures


def test_messplus_fixture(tmp_path, capsys):
    out = tmp_path / "mp.parquet"
    _, err = ok(["trace", "import", "outcomes", MESSPLUS_CSV, "--preset", "messplus", "-o", out], capsys)
    assert "dropped 1 of 10" in err
    df, meta = read_table(out)
    assert meta["models"] == ["small", "medium", "large"] and meta["cost_unit"] == "J"
    assert df.height == 9 and 6 not in df["request_id"].to_list()  # the row without labels
    src = pl.read_csv(MESSPLUS_CSV)
    # acc_norm wins where present (doc 0 of arc_challenge: label 0, acc_norm 1), label elsewhere (boolq)
    assert df["sat__small"][0] == 1.0 and src["label_small"][0] == 0
    assert df.filter(pl.col("group") == "boolq")["sat__medium"].to_list() == [1.0, 1.0, 0.0]
    assert df["energy_j__large"].to_list() == src["energy_consumption_large"].drop_nulls().gather([0, 1, 2, 3, 4, 5, 7, 8, 9]).to_list()
    assert df["latency_s__small"][0] == 0.41
    assert df["source_id"].to_list()[-2:] == ["0", "1"]
    info = info_json(out, capsys)
    assert set(info["groups"]) == {"arc_challenge", "boolq", "winogrande"}
    assert info["models"]["large"]["accuracy"] == pytest.approx(8 / 9)


def test_generic_probabilities_models_and_id(tmp_path, capsys):
    csv = tmp_path / "wide.csv"
    csv.write_text("qid,topic,p__big,p__tiny,usd__big,usd__tiny,ms__big,ms__tiny\n"
                   "10,a,0.9,0.25,0.02,0.001,900,100\n"
                   "11,b,1,0,0.03,0.002,800,120\n"
                   "12,a,,0.5,0.01,0.001,700,90\n")
    out = tmp_path / "t.parquet"
    _, err = ok(["trace", "import", "outcomes", csv, "--sat", "p__*", "--cost", "usd__*", "--latency", "ms__*",
                 "--group", "topic", "--id", "qid", "-o", out], capsys)
    assert "dropped 1 of 3" in err
    df, meta = read_table(out)
    assert meta["models"] == ["tiny", "big"]  # by mean USD
    assert df["request_id"].to_list() == [10, 11] and df["arrival_s"].to_list() == [0.0, 1.0]
    assert df["sat__tiny"].to_list() == [0.25, 0.0] and meta["provenance"]["sat_kind"] == "probability"
    ok(["trace", "import", "outcomes", csv, "--sat", "p__*", "--cost", "usd__*", "--models", "big,tiny", "-o", out], capsys)
    assert read_table(out)[1]["models"] == ["big", "tiny"]
    assert (read_table(out)[0]["latency_s__big"] == 0).all()
    ok(["trace", "import", "outcomes", csv, "--sat", "p__*", "--cost-per-request", "big=0.5,tiny=0.01", "-o", out], capsys)
    df, meta = read_table(out)
    assert df["cost_usd__big"].to_list() == [0.5, 0.5] and meta["models"] == ["tiny", "big"]
    bad(["trace", "import", "outcomes", csv, "--sat", "p__*", "--cost-per-request", "big=0.5", "-o", out], capsys, "tiny")
    bad(["trace", "import", "outcomes", csv, "--sat", "p__*", "--cost-per-request", "big=lots,tiny=1", "-o", out],
        capsys, "lots")


def test_arrivals_jsonl_unsorted_ms(tmp_path, capsys):
    src = tmp_path / "arr.jsonl"
    rows = [{"t": 5000, "in": 10, "out": 3}, {"t": 1000, "in": 20, "out": 4}, {"t": 3000, "in": 30, "out": 5},
            {"t": 3000, "in": 40, "out": 6}]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "a.parquet"
    _, err = ok(["trace", "import", "arrivals", src, "--time", "t", "--time-unit", "ms", "--prompt-tokens", "in",
                 "--output-tokens", "out", "-o", out], capsys)
    assert "1 row(s) arrived before" in err
    df, prov = read_arrivals(out)
    assert df["arrival_s"].to_list() == [0.0, 2.0, 2.0, 4.0]
    assert df["prompt_tokens"].to_list() == [20, 30, 40, 10]
    assert prov["out_of_order_rows"] == 1
    info = info_json(out, capsys)
    assert info["rows"] == 4 and info["span_s"] == 4.0 and info["rate_per_s"] == 1.0 and info["peak_rate_1s"] == 2


def _small_inputs(tmp_path, capsys, n_arrivals=4):
    out = tmp_path / "mp.parquet"
    ok(["trace", "import", "outcomes", MESSPLUS_CSV, "--preset", "messplus", "-o", out], capsys)
    arr = tmp_path / "arr.csv"
    arr.write_text("ts,p,o\n" + "".join(f"{10 + 2 * i},{100 + i},{20 + i}\n" for i in range(n_arrivals)))
    a = tmp_path / "arr.parquet"
    ok(["trace", "import", "arrivals", arr, "--time", "ts", "--prompt-tokens", "p", "--output-tokens", "o", "-o", a], capsys)
    return out, a


def test_compose_cycle_time_scale_and_seed(tmp_path, capsys):
    outcomes, arrivals = _small_inputs(tmp_path, capsys)
    t1 = tmp_path / "t1.parquet"
    ok(["trace", "compose", "--outcomes", outcomes, "--arrivals", arrivals, "-o", t1], capsys)
    df, meta = read_table(t1)
    # 9 outcome rows over 4 arrivals at 0,2,4,6 s: the pattern repeats every 6 + 2 s
    assert df["arrival_s"].to_list() == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert df["prompt_tokens"].to_list()[:5] == [100, 101, 102, 103, 100]
    assert df["output_tokens__large"].to_list()[:2] == [20, 21]
    assert df["request_id"].to_list() == list(range(9)) and meta["provenance"]["assign"] == "cycle"
    t2 = tmp_path / "t2.parquet"
    ok(["trace", "compose", "--outcomes", outcomes, "--arrivals", arrivals, "-o", t2, "--time-scale", "0.5"], capsys)
    assert read_table(t2)[0]["arrival_s"].to_list() == [x / 2 for x in df["arrival_s"].to_list()]
    s = [tmp_path / f"s{i}.parquet" for i in range(3)]
    for path, seed in zip(s, (1, 1, 2)):
        ok(["trace", "compose", "--outcomes", outcomes, "--arrivals", arrivals, "-o", path, "--assign", "sample",
            "--seed", seed, "--rows", 20], capsys)
    a, b, c = (read_table(p)[0] for p in s)
    assert a.equals(b) and not a["source_request_id"].equals(c["source_request_id"])
    assert a.height == 20 and sorted(a["source_request_id"].to_list()[:9]) == sorted(df["source_request_id"].to_list())
    load_trace(s[0])


def test_compose_derives_from_profile(tmp_path, capsys):
    csv = tmp_path / "o.csv"
    csv.write_text("ok__a,ok__b,usd__a,usd__b\n1,1,1,2\n0,1,1,2\n")
    out = tmp_path / "o.parquet"
    ok(["trace", "import", "outcomes", csv, "--sat", "ok__*", "--cost", "usd__*", "-o", out], capsys)
    arr = tmp_path / "arr.csv"
    arr.write_text("ts,p,o\n0,1000,10\n1,2000,20\n")
    a = tmp_path / "a.parquet"
    ok(["trace", "import", "arrivals", arr, "--time", "ts", "--prompt-tokens", "p", "--output-tokens", "o", "-o", a], capsys)
    prof = tmp_path / "decode.csv"
    prof.write_text("model,batch,ctx,step_ms,j_per_token\n"
                    "m1,1,1024,10,2.0\nm1,4,1024,12,0.6\n"
                    "m2,1,1024,40,8.0\nm2,4,1024,44,2.4\n")
    (tmp_path / "prefill.csv").write_text("model,batch,prompt_tokens,ms,j\nm1,1,1000,5,3\nm2,1,1000,20,12\n")
    t = tmp_path / "t.parquet"
    ok(["trace", "compose", "--outcomes", out, "--arrivals", a, "-o", t, "--profile", prof, "--gpu", "h200",
        "--map", "a=m1,b=m2*0.5", "--concurrency", "2.5"], capsys)
    df, meta = read_table(t)
    assert meta["cost_unit"] == "J"
    # a: prefill 5 ms/1000 tok, ITL at concurrency 2.5 = 11 ms, J/token = 1.3; prefill 3 J/1000 tok
    assert df["latency_s__a"].to_list() == pytest.approx([0.005 + 10 * 0.011, 0.010 + 20 * 0.011])
    assert df["energy_j__a"].to_list() == pytest.approx([3 + 10 * 1.3, 6 + 20 * 1.3])
    # b = m2 scaled by 0.5 (J and time)
    assert df["energy_j__b"].to_list() == pytest.approx([0.5 * (12 + 10 * 5.2), 0.5 * (24 + 20 * 5.2)])
    assert meta["provenance"]["derived"]["models"]["b"]["scaled"]["factor"] == 0.5


def test_profile_curve_rules(tmp_path):
    rows = [("x", "H100", 1, c, e, i) for c, e, i in ((8, 1.0, 0.01), (16, 0.5, 0.02), (64, 0.2, 0.04))]
    rows += [("y", "H100", 1, 8, 1.0, 0.01)]
    df = pl.DataFrame(rows, schema=["model_id", "gpu", "num_gpus", "concurrency", "energy_per_token_j", "itl_s"], orient="row")
    path = tmp_path / "p.parquet"
    df.write_parquet(path)
    table = load_profiles(path)
    c = ProfileCurve.select(table, "x", "h100")
    assert c.energy_per_token_j(12) == pytest.approx(0.75) and c.itl_s(40) == pytest.approx(0.03)
    assert c.energy_per_token_j(1) == 1.0 and c.energy_per_token_j(1000) == 0.2
    assert np.allclose(c.itl_s(np.array([8, 64])), [0.01, 0.04])
    with pytest.raises(UserError, match="'y'.*1 concurrency point"):
        ProfileCurve.select(table, "y", "H100")
    with pytest.raises(UserError, match="'z'"):
        ProfileCurve.select(table, "z", "H100")
    with pytest.raises(UserError, match="GPU 'A100'"):
        ProfileCurve.select(table, "x", "A100")
    with pytest.raises(UserError, match="factor"):
        c.scale_from(-1)


# ------------------------------------------------------------------------------------------ bad inputs


def test_bad_outcome_files(tmp_path, capsys):
    out = tmp_path / "o.parquet"
    imp = ["trace", "import", "outcomes"]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    bad(imp + [empty, "--sat", "c__*", "--cost", "u__*", "-o", out], capsys, "empty")
    header = tmp_path / "header.csv"
    header.write_text("c__a,c__b,u__a,u__b\n")
    bad(imp + [header, "--sat", "c__*", "--cost", "u__*", "-o", out], capsys, "no data rows")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("x,y\n1,2\n")
    bad(imp + [wrong, "--sat", "c__*", "--cost", "u__*", "-o", out], capsys, "no column matches", "c__*")
    text = tmp_path / "text.csv"
    text.write_text("c__a,c__b,u__a,u__b\n1,0,1,2\n1,oops,1,2\n")
    bad(imp + [text, "--sat", "c__*", "--cost", "u__*", "-o", out], capsys, "c__b", "numeric", "oops")
    rng = tmp_path / "range.csv"
    rng.write_text("c__a,c__b,u__a,u__b\n1,2,1,2\n")
    bad(imp + [rng, "--sat", "c__*", "--cost", "u__*", "-o", out], capsys, "c__b", "[0, 1]")
    neg = tmp_path / "neg.csv"
    neg.write_text("c__a,c__b,u__a,u__b\n1,0,-1,2\n")
    bad(imp + [neg, "--sat", "c__*", "--cost", "u__*", "-o", out], capsys, "u__a", "non-negative")
    nocost = tmp_path / "nocost.csv"
    nocost.write_text("c__a,c__b,u__a\n1,0,1\n")
    bad(imp + [nocost, "--sat", "c__*", "--cost", "u__*", "-o", out], capsys, "'b'")
    _, err = ok(imp + [nocost, "--sat", "c__*", "-o", tmp_path / "quality_only.parquet"], capsys)
    assert "no cost yet" in err  # quality without cost is imported, with a warning
    bad(imp + [nocost, "--sat", "c__*", "--cost", "u__*", "--models", "a,zz", "-o", out], capsys, "zz")
    bad(imp + [nocost, "--preset", "nope", "-o", out], capsys, "unknown preset", "nope")
    bad(imp + [tmp_path / "missing.csv", "--sat", "c__*", "-o", out], capsys, "no such file")
    bad(imp + [tmp_path, "--sat", "c__*", "-o", out], capsys, "directory")
    bad(imp + [nocost, "--sat", "c__", "--cost", "u__*", "-o", out], capsys, "exactly one '*'")
    bad(imp + [wrong, "--preset", "messplus", "-o", out], capsys, "doc_id")
    bad(imp + [wrong, "--preset", "routerbench", "-o", out], capsys, "sample_id")
    bad(imp + [text, "--sat", "c__*", "--cost", "u__*", "--id", "nope", "-o", out], capsys, "--id", "nope")
    assert not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written files


def test_bad_arrival_files(tmp_path, capsys):
    out = tmp_path / "a.parquet"
    imp = ["trace", "import", "arrivals"]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    bad(imp + [empty, "--preset", "azure", "-o", out], capsys, "empty")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("when,n\n1,2\n")
    bad(imp + [wrong, "--preset", "azure", "-o", out], capsys, "TIMESTAMP", "not found")
    bad(imp + [wrong, "--preset", "gcp", "-o", out], capsys, "unknown preset", "gcp")
    bad(imp + [wrong, "-o", out], capsys, "--time")
    bad(imp + [wrong, "--time", "when", "--time-unit", "weeks", "-o", out], capsys, "weeks")
    txt = tmp_path / "txt.csv"
    txt.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.1,10,2\n2023-11-16 18:17:04.2,ten,3\n")
    bad(imp + [txt, "--preset", "azure", "-o", out], capsys, "ContextTokens", "numeric", "ten")
    dt = tmp_path / "dt.csv"
    dt.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,10,2\n")
    bad(imp + [dt, "--preset", "azure", "-o", out], capsys, "TIMESTAMP", "date-time")
    num = tmp_path / "num.csv"
    num.write_text("t\n1\nsoon\n")
    bad(imp + [num, "--time", "t", "-o", out], capsys, "'t'", "numeric", "soon")
    bad(imp + [tmp_path / "none.csv", "--preset", "azure", "-o", out], capsys, "no such file")
    bad(imp + [tmp_path, "--preset", "azure", "-o", out], capsys, "directory")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"t": 1}\n{"t": \n')
    bad(imp + [broken, "--time", "t", "-o", out], capsys, "broken.jsonl")
    assert not out.exists()


def test_bad_profile_compose_and_info_inputs(tmp_path, capsys):
    out = tmp_path / "p.parquet"
    prof = ["profile", "import", "mlenergy"]
    bad(prof + [tmp_path / "none.json", "-o", out], capsys, "no such file")
    j = tmp_path / "task.json"
    j.write_text("{not json")
    bad(prof + [j, "-o", out], capsys, "task.json", "json")
    j.write_text(json.dumps({"configurations": [{"model_id": "m", "gpu_model": "H100", "num_gpus": 1,
                                                 "max_num_seqs": 8, "energy_per_token_joules": "lots",
                                                 "median_itl_ms": 5}]}))
    bad(prof + [j, "-o", out], capsys, "energy_per_token_joules", "number")
    v2 = tmp_path / "v2.csv"
    v2.write_text("Model,GPU\nx,H100\n")
    bad(prof + [v2, "-o", out], capsys, "v2.csv")
    empty_dir = tmp_path / "d"
    empty_dir.mkdir()
    bad(prof + [empty_dir, "-o", out], capsys, "directory")
    assert not out.exists()
    outcomes, arrivals = _small_inputs(tmp_path, capsys)
    comp = ["trace", "compose", "--outcomes", outcomes, "--arrivals", arrivals, "-o", tmp_path / "t.parquet"]
    bad(comp + ["--assign", "shuffle"], capsys, "--assign", "shuffle")
    bad(comp + ["--time-scale", "0"], capsys, "--time-scale")
    bad(comp + ["--profile", tmp_path / "none.parquet", "--gpu", "H100"], capsys, "no such file")
    bad(["trace", "compose", "--outcomes", outcomes, "--arrivals", outcomes.with_name("nope.parquet"), "-o",
         tmp_path / "t.parquet"], capsys, "no such file")
    bad(["trace", "compose", "--outcomes", arrivals, "--arrivals", arrivals, "-o", tmp_path / "t.parquet"],
        capsys, "not a trace")
    csv = tmp_path / "plain.csv"
    csv.write_text("a\n1\n")
    bad(["trace", "info", csv], capsys, "parquet")
    bad(["trace", "info", tmp_path / "none.parquet"], capsys, "no such file")
    bad(["trace", "info", tmp_path], capsys, "directory")


# ------------------------------------------------------------------ issue 17: the shapes people actually hold

LONG = ["trace", "import", "outcomes", LONG_CSV, "--sat", "correct", "--id", "id"]


def test_long_layout_pivots_like_the_source(tmp_path, capsys):
    out = tmp_path / "long.parquet"
    _, err = ok(LONG + ["--cost", "cost", "--latency", "latency_ms", "--latency-unit", "ms", "--group", "benchmark",
                        "-o", out], capsys)
    assert "long table" in err and "'model'" in err  # detected, and said so
    assert "dropped 1 of 6" in err  # request 6 has no 'medium' row: a missing label, dropped like in the wide layout
    df, meta = read_table(out)
    src = pl.read_csv(LONG_CSV)
    assert meta["models"] == ["small", "medium", "large"]  # by mean cost
    assert df["request_id"].to_list() == [1, 2, 3, 4, 5]  # file order of first appearance
    for row in src.filter(pl.col("id") != 6).iter_rows(named=True):
        r = df.filter(pl.col("request_id") == row["id"])
        assert r[f"sat__{row['model']}"].item() == row["correct"]
        assert r[f"cost_usd__{row['model']}"].item() == row["cost"]
        assert r[f"latency_s__{row['model']}"].item() == pytest.approx(row["latency_ms"] / 1000)
        assert r["group"].item() == row["benchmark"]
    assert meta["provenance"]["latency_unit_in_source"].startswith("ms")
    # the same table given explicitly gives the same file
    out2 = tmp_path / "long2.parquet"
    ok(LONG + ["--layout", "long", "--model-column", "model", "--cost", "cost", "--latency", "latency_ms",
               "--latency-unit", "ms", "--group", "benchmark", "-o", out2], capsys)
    assert read_table(out2)[0].equals(df)
    # a latency in ms read as seconds would be 1000x larger: the unit matters
    ok(LONG + ["--cost", "cost", "--latency", "latency_ms", "-o", out2], capsys)
    assert read_table(out2)[0]["latency_s__large"][0] == 1000 * df["latency_s__large"][0]


def test_long_layout_bad_inputs(tmp_path, capsys):
    out = tmp_path / "o.parquet"
    dup = tmp_path / "dup.csv"
    dup.write_text(LONG_CSV.read_text() + "1,small,1,0.002,120,40,10,arc\n")
    bad(["trace", "import", "outcomes", dup, "--sat", "correct", "--id", "id", "--cost", "cost", "-o", out], capsys,
        "more than one row", "small")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(LONG_CSV.read_text().replace("1,large,1,0.030,900,40,12,arc", "1,large,1,0.030,900,40,12,gsm8k"))
    bad(["trace", "import", "outcomes", mixed, "--sat", "correct", "--id", "id", "--cost", "cost", "--group",
         "benchmark", "-o", out], capsys, "benchmark", "differs")
    bad(LONG[:-2] + ["--layout", "long", "--model-column", "model", "--cost", "cost", "-o", out], capsys, "--id")
    bad(LONG + ["--layout", "long", "--cost", "cost", "-o", out], capsys, "--model-column")
    bad(LONG + ["--layout", "tall", "-o", out], capsys, "--layout", "tall")
    bad(LONG + ["--model-column", "nope", "--cost", "cost", "-o", out], capsys, "nope")
    bad(LONG + ["--cost", "cost__*", "-o", out], capsys, "--cost", "column name")
    bad(LONG + ["--cost", "cost", "--latency", "latency_ms", "--latency-unit", "min", "-o", out], capsys,
        "--latency-unit", "min")
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_cost_unit_travels_to_metadata_summary_and_table(tmp_path, capsys):
    out = tmp_path / "cny.parquet"
    _, err = ok(LONG + ["--cost", "cost", "--cost-unit", "CNY", "-o", out], capsys)
    assert "cost in CNY" in err
    _, meta = read_table(out)
    assert meta["cost_unit"] == "CNY" and meta["money_unit"] == "CNY"
    assert load_trace(out, objective="cost_usd").cost_unit == "CNY"
    out_text, _ = ok(["trace", "info", out], capsys)
    assert "mean cost in CNY" in out_text
    scen = tmp_path / "s.yaml"
    scen.write_text(f"name: cny\nseed: 1\nalpha: 0.6\nobjective: cost_usd\ntrace: {{path: {out}}}\n"
                    "engine: {mode: sequential}\npolicies:\n  - {kind: always, model: large}\n")
    table, _ = ok(["run", scen, "-o", tmp_path / "res"], capsys)
    assert "CNY" in table and "USD" not in table
    assert json.loads((tmp_path / "res" / "summary.json").read_text())["cost_unit"] == "CNY"
    report = (tmp_path / "res" / "report.html").read_text()
    assert "CNY" in report and "USD" not in report
    bad(LONG + ["--cost", "cost", "--cost-unit", "two words", "-o", tmp_path / "x.parquet"], capsys, "--cost-unit")


def test_quality_without_cost_then_run_refuses_then_price_list(tmp_path, capsys):
    out = tmp_path / "q.parquet"
    _, err = ok(LONG + ["-o", out], capsys)
    assert "warning" in err and "no cost yet" in err
    df, meta = read_table(out)
    assert not [c for c in df.columns if c.startswith(("cost_usd__", "energy_j__"))]
    assert meta["cost_unit"] == "none" and "no cost yet" in meta["provenance"]["cost"]
    scen = tmp_path / "s.yaml"
    scen.write_text(f"name: q\nseed: 1\nalpha: 0.6\ntrace: {{path: {out}}}\nengine: {{mode: sequential}}\n"
                    "policies:\n  - {kind: always, model: large}\n")
    bad(["run", scen, "-o", tmp_path / "res"], capsys, "no cost yet", "--profile", "--cost-per-request", "--price-per-mtok")
    assert not (tmp_path / "res").exists()
    # per-token prices x the table's own token counts
    priced = tmp_path / "p.parquet"
    ok(LONG + ["--prompt-tokens", "prompt_tokens", "--output-tokens", "output_tokens",
               "--price-per-mtok", "small=1,medium=3:6,large=10:30", "-o", priced], capsys)
    df, meta = read_table(priced)
    src = pl.read_csv(LONG_CSV).filter(pl.col("id") == 1)
    tok = {r["model"]: (r["prompt_tokens"], r["output_tokens"]) for r in src.iter_rows(named=True)}
    assert df["cost_usd__small"][0] == pytest.approx((tok["small"][0] * 1 + tok["small"][1] * 1) / 1e6)
    assert df["cost_usd__medium"][0] == pytest.approx((tok["medium"][0] * 3 + tok["medium"][1] * 6) / 1e6)
    assert df["cost_usd__large"][0] == pytest.approx((tok["large"][0] * 10 + tok["large"][1] * 30) / 1e6)
    bad(LONG + ["--price-per-mtok", "small=1,medium=3,large=10", "-o", priced], capsys, "--prompt-tokens")
    bad(LONG + ["--prompt-tokens", "prompt_tokens", "--output-tokens", "output_tokens",
                "--price-per-mtok", "small=1,medium=x,large=1", "-o", priced], capsys, "medium")


def test_token_counts_on_outcome_tables_survive_compose(tmp_path, capsys):
    out = tmp_path / "tok.parquet"
    ok(LONG + ["--cost", "cost", "--prompt-tokens", "prompt_tokens", "--output-tokens", "output_tokens", "-o", out],
       capsys)
    df, _ = read_table(out)
    assert df["prompt_tokens"].to_list() == [40, 35, 60, 20, 80]
    assert df["output_tokens__large"].to_list() == [12, 10, 19, 7, 29]
    arr = tmp_path / "arr.csv"
    arr.write_text("t,p,o\n0,999,888\n1,999,888\n2,999,888\n")
    ok(["trace", "import", "arrivals", arr, "--time", "t", "--prompt-tokens", "p", "--output-tokens", "o",
        "-o", tmp_path / "a.parquet"], capsys)
    ok(["trace", "compose", "--outcomes", out, "--arrivals", tmp_path / "a.parquet", "-o", tmp_path / "c.parquet"],
       capsys)
    composed, _ = read_table(tmp_path / "c.parquet")
    assert composed["prompt_tokens"].to_list() == df["prompt_tokens"].to_list()  # the request's own counts
    assert composed["output_tokens__large"].to_list() == df["output_tokens__large"].to_list()
    bad(LONG + ["--cost", "cost", "--prompt-tokens", "benchmark", "-o", tmp_path / "x.parquet"], capsys,
        "benchmark", "numeric")


def test_order_shuffle_is_seeded_and_info_says_grouped(tmp_path, capsys):
    a, b, c = (tmp_path / f"{x}.parquet" for x in "abc")
    ok(LONG + ["--cost", "cost", "--group", "benchmark", "-o", a], capsys)
    info = info_json(a, capsys)
    assert info["order"]["grouped"] is True and info["order"]["groups"] == 2 and info["order"]["group_runs"] == 2
    out_text, _ = ok(["trace", "info", a], capsys)
    assert "grouped" in out_text
    ok(LONG + ["--cost", "cost", "--group", "benchmark", "--order", "shuffle", "--seed", "5", "-o", b], capsys)
    ok(LONG + ["--cost", "cost", "--group", "benchmark", "--order", "shuffle", "--seed", "5", "-o", c], capsys)
    assert b.read_bytes() == c.read_bytes()
    db, meta = read_table(b)
    assert sorted(db["request_id"].to_list()) == [1, 2, 3, 4, 5] and db["request_id"].to_list() != [1, 2, 3, 4, 5]
    assert db["arrival_s"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert meta["provenance"]["order"] == "shuffled (seed 5)"
    da, _ = read_table(a)
    for rid in range(1, 6):  # each request keeps its own outcomes
        assert db.filter(pl.col("request_id") == rid).drop("arrival_s").equals(
            da.filter(pl.col("request_id") == rid).drop("arrival_s"))
    bad(LONG + ["--cost", "cost", "--order", "random", "-o", c], capsys, "--order", "random")


def test_join_side_file(tmp_path, capsys):
    out = tmp_path / "j.parquet"
    _, err = ok(LONG + ["--cost", "cost", "--join", QUESTIONS, "--on", "id", "--text", "question", "--group", "topic",
                        "--embedding", "embedding", "-o", out], capsys)
    df, _ = read_table(out)
    assert df["text"][3] == "Tom has 3 apples and buys 2 more. How many?" and df["group"][3] == "math"
    assert df["embedding"][0].to_list() == [0.1, 0.2, 0.3]
    tr = load_trace(out, objective="cost_usd")
    assert tr.features.feature_dim == 3 and tr.features.group_names == ["math", "science"]
    # a CSV side file with JSON-text embeddings works the same way
    side = tmp_path / "side.csv"
    side.write_text('id,question,vec\n1,a b,"[1, 0]"\n2,c,"[0, 1]"\n3,d,"[1, 1]"\n4,e,"[0, 0]"\n5,f,"[2, 2]"\n')
    ok(LONG + ["--cost", "cost", "--join", side, "--on", "id", "--embedding", "vec", "-o", out], capsys)
    assert read_table(out)[0]["embedding"][4].to_list() == [2.0, 2.0]
    dup = tmp_path / "dup.csv"
    dup.write_text("id,question\n1,a\n1,b\n")
    bad(LONG + ["--cost", "cost", "--join", dup, "--on", "id", "-o", tmp_path / "x.parquet"], capsys, "'id'", "duplicated")
    bad(LONG + ["--cost", "cost", "--join", side, "--on", "qid", "-o", tmp_path / "x.parquet"], capsys, "qid")
    bad(LONG + ["--cost", "cost", "--join", side, "-o", tmp_path / "x.parquet"], capsys, "--on")
    bad(LONG + ["--cost", "cost", "--join", tmp_path / "none.csv", "--on", "id", "-o", tmp_path / "x.parquet"], capsys,
        "no such file")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('id,vec\n1,"[1, 0]"\n2,"[0]"\n3,"[1, 1]"\n4,"[0, 0]"\n5,"[2, 2]"\n')
    bad(LONG + ["--cost", "cost", "--join", ragged, "--on", "id", "--embedding", "vec", "-o", tmp_path / "x.parquet"],
        capsys, "--embedding", "same length")
    assert not (tmp_path / "x.parquet").exists()


def test_fractional_scores_are_reported(tmp_path, capsys):
    out = tmp_path / "m.parquet"
    _, err = ok(["trace", "import", "outcomes", MARTIAN_CSV, "--preset", "routerbench-martian", "-o", out], capsys)
    src = pl.read_csv(MARTIAN_CSV)
    scores = src.select("gpt-4-1106-preview", "meta/llama-2-70b-chat", "mistralai/mistral-7b-chat").to_numpy().ravel()
    expected = int(((scores > 0) & (scores < 1)).sum())
    assert expected > 0 and f"{expected} of {scores.size} satisfaction values are fractional" in err
    info = info_json(out, capsys)
    assert info["fractional_sat"] == {"values": expected, "of": scores.size}
    out_text, _ = ok(["trace", "info", out], capsys)
    assert "fractional sat" in out_text
    ok(LONG + ["--cost", "cost", "-o", out], capsys)
    assert info_json(out, capsys)["fractional_sat"]["values"] == 0


def test_preset_routerbench_martian(tmp_path, capsys):
    out = tmp_path / "m.parquet"
    ok(["trace", "import", "outcomes", MARTIAN_CSV, "--preset", "routerbench-martian", "-o", out], capsys)
    df, meta = read_table(out)
    src = pl.read_csv(MARTIAN_CSV)
    assert meta["models"] == ["mistralai_mistral-7b-chat", "meta_llama-2-70b-chat", "gpt-4-1106-preview"]  # by mean USD
    assert meta["provenance"]["model_names"]["meta_llama-2-70b-chat"] == "meta/llama-2-70b-chat"
    assert df["sat__meta_llama-2-70b-chat"].to_list() == src["meta/llama-2-70b-chat"].to_list()
    assert df["cost_usd__gpt-4-1106-preview"].to_list() == src["gpt-4-1106-preview|total_cost"].to_list()
    assert df["group"].to_list() == src["eval_name"].to_list() and df["text"][0] == src["prompt"][0]
    assert df["source_id"].to_list() == src["sample_id"].to_list()
    bad(["trace", "import", "outcomes", LONG_CSV, "--preset", "routerbench-martian", "-o", out], capsys, "sample_id")
    broken = tmp_path / "broken.csv"
    broken.write_text("sample_id,eval_name,a|total_cost,b|total_cost,b\n1,x,0.1,0.2,1\n")
    bad(["trace", "import", "outcomes", broken, "--preset", "routerbench-martian", "-o", tmp_path / "b.parquet"],
        capsys, "no score column", "'a'")


def test_preset_embedllm(tmp_path, capsys):
    out = tmp_path / "e.parquet"
    _, err = ok(["trace", "import", "outcomes", EMBEDLLM_CSV, "--preset", "embedllm", "-o", out], capsys)
    assert "1 repeated (request, model) row(s)" in err and "no cost yet" in err
    df, meta = read_table(out)
    src = pl.read_csv(EMBEDLLM_CSV)
    assert meta["models"] == ["m0", "m1", "m2"] and df["source_id"].to_list() == ["0", "1", "2", "3"]
    best = src.group_by("prompt_id", "model_id").agg(pl.col("label").max())  # EmbedLLM's own loader keeps the max
    for r in best.iter_rows(named=True):
        assert df[f"sat__m{r['model_id']}"][r["prompt_id"]] == r["label"]
    assert df["text"][1] == "Name the capital of Australia."
    bad(["trace", "import", "outcomes", LONG_CSV, "--preset", "embedllm", "-o", out], capsys, "model_id")


def test_quality_only_trace_gets_energy_from_a_profile(tmp_path, capsys):
    csv = tmp_path / "q.csv"
    csv.write_text("id,model,ok\n1,a,1\n1,b,1\n2,a,0\n2,b,1\n")
    out = tmp_path / "o.parquet"
    _, err = ok(["trace", "import", "outcomes", csv, "--sat", "ok", "--id", "id", "-o", out], capsys)
    assert "no cost yet" in err
    arr = tmp_path / "arr.csv"
    arr.write_text("ts,p,o\n0,1000,10\n1,2000,20\n")
    a = tmp_path / "a.parquet"
    ok(["trace", "import", "arrivals", arr, "--time", "ts", "--prompt-tokens", "p", "--output-tokens", "o", "-o", a], capsys)
    prof = tmp_path / "decode.csv"
    prof.write_text("model,batch,ctx,step_ms,j_per_token\nm1,1,1024,10,2.0\nm1,4,1024,12,0.6\n")
    (tmp_path / "prefill.csv").write_text("model,batch,prompt_tokens,ms,j\nm1,1,1000,5,3\n")
    t = tmp_path / "t.parquet"
    bare = tmp_path / "bare.parquet"
    _, err = ok(["trace", "compose", "--outcomes", out, "--arrivals", a, "-o", bare], capsys)
    assert "still has no cost" in err
    ok(["trace", "compose", "--outcomes", out, "--arrivals", a, "-o", t, "--profile", prof, "--gpu", "h200",
        "--map", "a=m1,b=m1*2"], capsys)
    df, meta = read_table(t)
    assert meta["cost_unit"] == "J" and df["energy_j__b"].to_list() == pytest.approx((2 * df["energy_j__a"]).to_list())
    assert load_trace(t).outcomes.cost.shape == (2, 2)


def test_a_recipe_takes_the_import_options(tmp_path, capsys):
    """A scenario's ``trace.recipe.outcomes`` takes the options of ``trace import outcomes``: the long layout,
    the latency unit and the cost unit here give the same trace as the command line."""
    from sim.config import validate_scenario
    from sim.running.runner import build_trace

    out = tmp_path / "cli.parquet"
    ok(LONG + ["--layout", "long", "--model-column", "model", "--cost", "cost", "--latency", "latency_ms",
               "--latency-unit", "ms", "--group", "benchmark", "--cost-unit", "CNY", "-o", out], capsys)
    cli = load_trace(out, objective="cost_usd")
    recipe = {"path": str(LONG_CSV), "sat": "correct", "id": "id", "layout": "long", "model_column": "model",
              "cost": "cost", "latency": "latency_ms", "latency_unit": "ms", "group": "benchmark", "cost_unit": "CNY"}
    scenario = validate_scenario({"name": "r", "alpha": 0.5, "objective": "cost_usd", "trace": {"recipe": {"outcomes": recipe}},
                                  "engine": {"mode": "sequential"}, "policies": [{"kind": "always", "model": "large"}]})
    trace = build_trace(scenario)
    assert trace.models == cli.models and trace.cost_unit == cli.cost_unit == "CNY"
    np.testing.assert_array_equal(trace.outcomes.cost, cli.outcomes.cost)
    np.testing.assert_array_equal(trace.outcomes.latency_s, cli.outcomes.latency_s)
    with pytest.raises(Exception, match="latency_unit"):
        validate_scenario({**scenario.model_dump(mode="json"),
                           "trace": {"recipe": {"outcomes": {**recipe, "latency_unit": "hours"}}}})
