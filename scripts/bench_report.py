#!/usr/bin/env python3
"""Rebuilds docs/BENCHMARKS.md's tables and docs/bench/online_components.png from the JSON
files scripts/bench_matrix.sh wrote to docs/bench/.

    python3 scripts/bench_report.py          (the plot needs matplotlib; without it the
                                              tables are still written)
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "docs" / "bench"
DOC = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- tables: begin -->", "<!-- tables: end -->"
BATCH_BEGIN, BATCH_END = "<!-- batches: begin -->", "<!-- batches: end -->"
BATCHES, BATCH_NETS = (1, 4, 16), ("loopback", "wan")
# Runs not re-measured since the protocols last changed (wire protocol 12: truncations that
# ride in the next opening, the 2Quad softmax's reciprocal on quarter octaves): their rows
# are marked and keep the previous version's rounds, bytes and times. Empty after a full
# `scripts/bench_matrix.sh`.
PREVIOUS = {"base-512-2quad", "large-512-2quad", "first-result"}
MARK = " (previous protocols)"


def load(name):
    p = BENCH / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def model_name(d):
    return {768: "BERT-base", 1024: "BERT-large", 384: "MiniLM-L6"}.get(d["hidden"], f"h{d['hidden']}")


def row(d):
    rss = d["peak_rss_mib"]
    return "| {} | {} | {} | {} | {:.2f} | {:.2f} | {:.0f} | {:.0f} | {} | {:.0f} / {:.0f} / {:.0f} | {:.4f} |".format(
        model_name(d), d["seq"], d["softmax"], d["net"], d["online_seconds"],
        d["offline_seconds"], d["online_bytes_per_party"] / 1e6, d["dealer_bytes"] / 1e6,
        d["rounds"], rss["dealer"], rss["p0"], rss["p1"], d["max_abs_error"])


def tables():
    head = ("| model | tokens | softmax | net | online s (median of 3) | offline s | "
            "online MB per party | dealer MB per pass | rounds | peak RSS MiB D / P0 / P1 | "
            "max abs error |\n|---|---|---|---|---|---|---|---|---|---|---|")
    names = [f"{m}-{s}-{sm}" for m in ("base", "large") for s in (128, 512) for sm in ("2quad", "exact")]
    names += [f"base-128-{sm}-{net}" for net in ("lan", "wan") for sm in ("2quad", "exact")]
    # The same pass with the AVX2 kernel forced (SECFORMER_KERNEL=avx2): the kernel's share.
    names += ["base-128-2quad-avx2"]
    runs = [(n, load(n)) for n in names]
    cpus = list(dict.fromkeys(d["cpu"] for _, d in runs if d)) or ["?"]
    if len(cpus) == 1:
        out = [f"Measured on: {cpus[0]}, 2 vCPUs, 24 GiB. Every `online_dealer_bytes` below is 0.", "", head]
    else:
        # Runs from several machines: each row names its machine (letters in this order).
        tags = {c: chr(ord("A") + i) for i, c in enumerate(cpus)}
        out = ["Measured on " + "; ".join(f"{t}: {c}" for c, t in tags.items())
               + " (2 vCPUs, 24 GiB each; the last column says which). The machines' runs are also "
               "from different versions of the protocols: each row's bytes and rounds are those of "
               "its own run. Every `online_dealer_bytes` below is 0.", "", head.replace(" max abs error |\n", " max abs error | machine |\n")
               .replace("|" + "---|" * 11, "|" + "---|" * 12)]
    missing = []
    for n, d in runs:
        if d:
            assert d["online_dealer_bytes"] == 0, n
            r = row(d) + (f" {tags[d['cpu']]} |" if len(cpus) > 1 else "")
            out.append(r.replace(f"| {d['seq']} |", f"| {d['seq']}{MARK} |", 1) if n in PREVIOUS else r)
        else:
            missing.append(n)
    why = {
        "base-512-exact": "27 GB of preprocessing per party per pass (`secformer bench plan "
                          "--seq 512 --softmax exact`: 4.0 GB online per party, 1062 rounds)",
        "large-512-exact": "about 70 GB of preprocessing per party per pass",
    }
    for n in missing:
        out += ["", f"Not measured: {n}" + (f", {why[n]}: more disk than the machine had free "
                                           "(`EXACT_512=1 scripts/bench_matrix.sh` runs it)." if n in why else ".")]
    comp = [(n, d) for n, d in runs if d and d["net"] == "loopback" and n not in PREVIOUS]
    out += ["", "Online time per component (seconds, loopback):", "",
            "| run | linear | softmax | GeLU | LayerNorm | others |", "|---|---|---|---|---|---|"]
    for n, d in comp:
        c = d["components"]
        name = n if len(cpus) == 1 else f"{n} ({tags[d['cpu']]})"
        out.append("| {} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} |".format(
            name, *(c[k]["seconds"] for k in ("linear", "softmax", "gelu", "layernorm", "others"))))
    streams = [load("stream-minilm-128"), load("stream-base-128")]
    out += ["", "Throughput with a warm pool (offline and online together, one client, loopback):", "",
            "| model | tokens | inferences per minute |", "|---|---|---|"]
    for d in streams:
        if d:
            out.append(f"| {model_name(d)} | {d['seq']} | {d['inferences_per_minute']:.1f} |")
    first = BENCH / "first-result.json"
    if first.exists():
        out += ["", "Time to the first result" + (MARK if "first-result" in PREVIOUS else "")
                + ": from starting `secformer infer` to its result on stdout "
                "(then it keeps the session, saving state and the next prepared pass, until it exits); "
                "`scripts/first_result.sh`:", "",
                "| model | fresh client s | resumed client s | fresh, until exit | resumed, until exit |",
                "|---|---|---|---|---|"]
        for r in json.loads(first.read_text()):
            out.append(f"| {r['model']} | {r['fresh_seconds']:.2f} | {r['resumed_seconds']:.2f} | "
                       f"{r['fresh_exit_seconds']:.2f} | {r['resumed_exit_seconds']:.2f} |")
    return "\n".join(out), comp


def batches():
    """The Batches section's table and the checks against its goals, from batch-minilm-[2quad-]NET-bB.json
    (no infix: the exact softmax, as the real all-MiniLM-L6-v2 runs; `2quad-`: the 2Quad one)."""
    variants = [("exact", "batch-minilm-"), ("2quad", "batch-minilm-2quad-")]
    runs = [(sm, net, b, load(f"{pre}{net}-b{b}"))
            for sm, pre in variants for net in BATCH_NETS for b in BATCHES]
    stale = {(sm, net, b) for sm, pre in variants for net in BATCH_NETS for b in BATCHES
             if f"{pre}{net}-b{b}" in PREVIOUS}
    have = [(sm, net, b, d) for sm, net, b, d in runs if d]
    if not have:
        return "Not measured yet (`bash scripts/bench_matrix.sh batch`)."
    d0 = have[0][3]
    emu = sorted({d["net_emulation"] for _, net, _, d in have if net != "loopback"})
    out = [f"Measured on: {d0['cpu']}, 2 vCPUs. all-MiniLM-L6-v2's shape (6 layers, hidden 384, "
           f"12 heads, FFN 1536, vocabulary {d0['vocab']}, random weights), bucket {d0['seq']} "
           f"(secret lengths), median of {len(d0['online_seconds_all'])} passes; WAN shaped by "
           f"{', '.join(emu) or '-'}. Every `online_dealer_bytes` below is 0.", "",
           "| softmax | batch | net | online s per pass | online s per text | online MB per party "
           "per text | rounds per pass |", "|---|---|---|---|---|---|---|"]
    for sm, net, b, d in have:
        assert d["online_dealer_bytes"] == 0, (sm, net, b)
        assert d["pool"]["batch"] == b and d["softmax"] == sm, (sm, net, b)
        out.append("| {} | {} | {} | {:.2f} | {:.3f} | {:.2f} | {} |".format(
            sm, b, net + (MARK if (sm, net, b) in stale else ""), d["online_seconds"], d["online_seconds"] / b,
            d["online_bytes_per_party"] / b / 1e6, d["rounds"]))
    got = {(sm, net, b): d for sm, net, b, d in have}
    checks = []
    for sm, _ in variants:
        if any((sm, "wan", b) in stale for b in BATCHES):
            # Batch 1 and 16 from different protocol versions do not compare.
            got = {k: v for k, v in got.items() if not (k[0] == sm and k[1] == "wan")}
            checks.append(f"* {sm}, wan: not re-measured since the protocols changed.")
        for net in BATCH_NETS:
            one, many = got.get((sm, net, 1)), got.get((sm, net, 16))
            if one and many:
                r = many["rounds"] / one["rounds"]
                checks.append(f"* {sm}, {net}: batch 16's rounds are {r:.2f} times batch 1's "
                              f"({many['rounds']} / {one['rounds']}; target at most 1.25: "
                              f"{'met' if r <= 1.25 else 'not met'}).")
        one, many = got.get((sm, "wan", 1)), got.get((sm, "wan", 16))
        if one and many:
            a, b = one["online_seconds"], many["online_seconds"] / 16
            checks.append(f"* {sm}, wan: online seconds per text at batch 16 are {b:.2f} against "
                          f"{a:.2f} at batch 1, {b / a:.3f} of it = 1/{a / b:.1f} (target at most "
                          f"1/8 = 0.125: {'met' if b / a <= 0.125 else 'not met'}).")
        four = got.get((sm, "wan", 4))
        if one and many and four:
            # A WAN pass costs about F + B m: F the rounds' latency, m one text's bytes at the
            # link's rate (batch 4 to 16 gives m; batch 1 then gives F).
            m = (many["online_seconds"] - four["online_seconds"]) / 12
            f = one["online_seconds"] - m
            mb = many["online_bytes_per_party"] / 16 / 1e6
            checks.append(f"* {sm}, wan, why: a pass costs about {f:.1f} s + {m:.2f} s per text "
                          f"({f / one['rounds'] * 1e3:.1f} ms per round over {one['rounds']} rounds; "
                          f"{mb:.1f} MB per text at 100 Mbit/s is {mb * 8 / 100:.2f} s). Batching shares "
                          f"the rounds, not the bytes, so no batch goes below {m / (f + m):.3f} of "
                          f"batch 1 per text; 1/8 at batch 16 needs at most {f / 14:.2f} s per "
                          f"text (bytes and arithmetic; now {m:.2f}), at most "
                          f"{f / 14 / (8 / 100):.1f} MB per text if the arithmetic cost nothing.")
    if checks:
        out += ["", "Against the goals (batch 16 shares its rounds: at most 1.25 times batch 1's;"
            " on the WAN, at most 1/8 of batch 1's seconds per text):", ""] + checks
    return "\n".join(out)


def replace_between(doc, begin, end, text):
    if begin not in doc or end not in doc:
        return doc
    a, b = doc.index(begin) + len(begin), doc.index(end)
    return doc[:a] + "\n" + text + "\n" + doc[b:]


def plot(comp):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: plot not updated", file=sys.stderr)
        return
    keys = ["linear", "softmax", "gelu", "layernorm", "others"]
    labels = [n for n, _ in comp]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bottom = [0.0] * len(comp)
    for k in keys:
        vals = [d["components"][k]["seconds"] for _, d in comp]
        ax.bar(labels, vals, bottom=bottom, label=k)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("online seconds")
    ax.set_title("secformer: online time per component (3 processes, loopback)")
    ax.legend()
    plt.xticks(rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(BENCH / "online_components.png", dpi=110)


def main():
    text, comp = tables()
    doc = replace_between(DOC.read_text(), BEGIN, END, text)
    doc = replace_between(doc, BATCH_BEGIN, BATCH_END, batches())
    DOC.write_text(doc)
    plot(comp)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
