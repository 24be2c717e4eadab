"""The text table of a GPU benchmark run, from the JSON files its parts wrote.

    python benchmarks/gpu/table.py OUT_DIR        -> OUT_DIR/table.txt (also printed)

A part that failed or was skipped shows as one line saying so; the table never hides a
missing part.
"""
import sys

from common import load


def _fmt(value, spec=".1f"):
    return "-" if value is None else f"{value:{spec}}"


def env_lines(env):
    if not env:
        return ["env: missing (the env part failed; see run.log)"]
    copy = env.get("copy", {})
    smi = env.get("nvidia_smi", {})
    return [f"GPU: {env.get('gpu', 'none (smoke run on CPU: no GPU figures)')}  sm {env.get('capability', '-')}  "
            f"SMs {env.get('sms', '-')}  L2 {env.get('l2_mib', '-')} MiB  clocks {smi.get('clocks.sm', '-')} / "
            f"max {smi.get('clocks.max.sm', '-')}",
            f"python {env['python']}  torch {env['torch']}  triton {env['triton']}  cuda {env.get('cuda')}",
            f"copy ceiling: {_fmt(copy.get('gbps'), '.0f')} GB/s (read + write, {copy.get('timed_by')})"]


def kernel_lines(kernels):
    if not kernels or "rows" not in kernels:
        return ["kernels: missing (the part failed; see run.log)"]
    lines = [f"{'case':<16} {'size':<6} {'dtype':<8} {'MB':>6} | {'eager':>13} | {'terra_dyn':>19} | "
             f"{'inductor':>13} | {'terra/ind':>9} {'call us e/t/i':>16}",
             f"{'':<40}| {'us':>6} {'%ceil':>6} | {'us':>6} {'%ceil':>6} {'1st s':>5} | {'us':>6} {'%ceil':>6} |"]
    if kernels.get("error"):
        lines.append(f"kernels: {kernels['error']}")
    for row in kernels["rows"]:
        head = f"{row['case']:<16} {row['size']:<6} {row['dtype'][:8]:<8}"
        if "systems" not in row:
            lines.append(f"{head} {row.get('skipped') or row.get('error', '')}"[:118])
            continue
        s = row["systems"]
        e, t, i = s.get("eager", {}), s.get("terra", {}), s.get("inductor", {})

        def pair(x):
            return f"{_fmt(x.get('device_us')):>6} {_fmt(100 * x['of_ceiling'] if x.get('of_ceiling') else None):>6}"
        speed = i["device_us"] / t["device_us"] if "device_us" in i and "device_us" in t else None
        calls = "/".join(_fmt(x.get("call_us"), ".0f") for x in (e, t, i))
        wrong = "" if t.get("ok") else "  WRONG RESULT"
        lines.append(f"{head} {row['bytes'] / 1e6:6.1f} | {pair(e)} | {pair(t)} {_fmt(t.get('first_call_s'), '.2f'):>5} | "
                     f"{pair(i)} | {_fmt(speed, '.2f'):>9} {calls:>16}{wrong}")
    lines.append("us: GPU time of one call (CUDA graph replay); %ceil: bytes in + out over that time, as a share "
                 "of the copy ceiling;\nterra/ind: inductor time / terra_dyn time (>1: terra_dyn faster); call us: "
                 "one synchronous call's wall time (eager/terra/inductor)")
    return lines


def overhead_lines(overhead):
    if not overhead or "rows" not in overhead:
        return ["overhead: missing (the part failed; see run.log)"]
    lines = [f"{'graph':<26} {'dtype':<8} {'eager':>7} {'terra':>7} {'terra+cg':>8} {'ind':>7} {'ind+cg':>7}  "
             "(us per synchronous call)"]
    for row in overhead["rows"]:
        head = f"{row['graph']:<26} {row['dtype'].replace('torch.', ''):<8}"
        if "eager_us" not in row:
            lines.append(f"{head} {row.get('skipped') or row.get('error', '')}"[:118])
            continue
        ok = "" if row.get("terra_ok") and row.get("terra_cudagraphs_ok") else "  WRONG RESULT"
        lines.append(f"{head} {_fmt(row['eager_us']):>7} {_fmt(row['terra_us']):>7} "
                     f"{_fmt(row['terra_cudagraphs_us']):>8} {_fmt(row.get('inductor_default_us')):>7} "
                     f"{_fmt(row.get('inductor_reduce-overhead_us')):>7}{ok}")
    return lines


def program_lines(programs):
    if not programs:
        return ["programs: missing (the part failed; see run.log)"]
    modes = programs.get("modes", [])
    lines = [f"programs ({programs.get('config')} config; modes {', '.join(modes)}); median step ms, x eager, "
             "losses vs eager, peak MB"]
    for result in programs["results"]:
        name = result["program"]
        if "modes" not in result:
            lines.append(f"  {name:<18} {result.get('skipped') or result.get('error', '')}"[:118])
            continue
        eager = (result["modes"].get("eager") or {}).get("median_s")
        for mode, res in result["modes"].items():
            if res.get("status") != "ok":
                lines.append(f"  {name:<18} {mode:<16} {res.get('status')}: {res.get('error')}"[:118])
                continue
            ratio = res["median_s"] / eager if eager and res.get("median_s") else None
            loss = "ref" if mode == "eager" else {True: "equal", False: "DIFFER", None: "-"}[res.get("loss_match")]
            lines.append(f"  {name:<18} {mode:<16} {_fmt(res['median_s'] * 1e3):>8} {_fmt(ratio, '.2f'):>6} "
                         f"{loss:>6} {_fmt(res.get('peak_mb'), '.0f'):>7}  first {_fmt(res.get('first_s'), '.1f')} s")
        if result.get("how") and result["how"] != "ok":
            lines.append(f"    note: {result['how']}"[:118])
    return lines


def main(out_dir):
    sections = [env_lines(load(out_dir, "env")), kernel_lines(load(out_dir, "kernels")),
                overhead_lines(load(out_dir, "overhead")), program_lines(load(out_dir, "programs"))]
    text = "\n\n".join("\n".join(s) for s in sections) + "\n"
    with open(f"{out_dir}/table.txt", "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1])
