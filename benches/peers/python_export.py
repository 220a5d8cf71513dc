#!/usr/bin/env python3
"""A straightforward Python exporter of the same contract (SPEC sections 2-3),
written the way a competent Python developer would: json.loads per line, dict
grouping, sorted(), zipfile (ZIP_DEFLATED at zlib's default level for text,
ZIP_STORED for already-compressed types), uploads streamed with
shutil.copyfileobj while their size and SHA-256 are checked.

It is the peer the benchmarks compare `batch-export build` against; it is not
part of the product. Usage: python_export.py DUMP_DIR OUT.zip
"""
import hashlib
import json
import os
import re
import shutil
import sys
import zipfile
from datetime import datetime

COMPRESSED_TYPES = {
    "image/jpeg", "image/png", "image/gif", "image/webp", "audio/mpeg", "video/mp4",
    "video/quicktime", "video/webm", "application/zip", "application/gzip",
    "application/x-7z-compressed", "application/pdf",
}
COMPRESSED_EXT = {"jpg", "jpeg", "png", "gif", "webp", "mp3", "mp4", "mov", "webm", "zip",
                  "gz", "7z", "pdf"}
DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}


def read_jsonl(path, optional=False):
    if optional and not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def safe_name(name):
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in name if ord(c) >= 32 and ord(c) != 127)
    name = re.sub(r'[<>:"|?*]', "_", name).rstrip(". ")
    if name.split(".")[0].upper() in DEVICES:
        name = "_" + name
    name = name or "file"
    while len(name.encode()) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:-1] + dot + ext) if dot and stem else name[:-1]
    return name


def ts(value):
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
    except ValueError:
        return None


def main(dump, out):
    batch = json.load(open(os.path.join(dump, "batch.json"), encoding="utf-8"))
    instructions = read_jsonl(os.path.join(dump, "instructions.jsonl"))
    tasks = read_jsonl(os.path.join(dump, "tasks.jsonl"))
    submissions = {s["id"]: s for s in read_jsonl(os.path.join(dump, "submissions.jsonl"))}
    responses = read_jsonl(os.path.join(dump, "responses.jsonl"))
    uploads = {u["file_key"]: u for u in read_jsonl(os.path.join(dump, "uploads.jsonl"), True)}
    instr_pos = {i["id"]: n for n, i in enumerate(instructions)}
    instr_type = {i["id"]: i["type"] for i in instructions}
    task_pos = {t["id"]: n for n, t in enumerate(tasks)}

    problems = []
    for r in responses:
        body = r["response"]
        sub = submissions.get(r["submission_id"])
        if sub is None or r["task_id"] not in task_pos or body["instruction_id"] not in instr_pos:
            problems.append(f"response {r['id']}: unknown reference")
        elif r.get("participant_id", sub["participant_id"]) != sub["participant_id"]:
            problems.append(f"response {r['id']}: participant differs")
        elif body["type"] not in (instr_type[body["instruction_id"]], "no_submission"):
            problems.append(f"response {r['id']}: wrong type")
    if problems:
        sys.exit("refused:\n" + "\n".join(problems[:200]))

    excluded = sum(1 for r in responses if r["response"]["type"] == "no_submission")
    exported = [r for r in responses if r["response"]["type"] != "no_submission"]
    created = {r["id"]: ts(r.get("created_at")) for r in exported}

    def within(r):
        c = created[r["id"]]
        return (instr_pos[r["response"]["instruction_id"]], c is not None,
                c.timestamp() if c else 0.0, r["id"])

    by_sub = {}
    for r in exported:
        by_sub.setdefault(r["submission_id"], []).append(r)
    for rs in by_sub.values():
        rs.sort(key=lambda r: (task_pos[r["task_id"]],) + within(r))

    # Name the files in by-submission order, numbering clashes.
    paths, taken = {}, set()
    for sid in sorted(by_sub):
        for r in by_sub[sid]:
            if r["response"]["type"] != "file_upload":
                continue
            for item in r["response"]["answer"]:
                up = uploads.get(item.get("file_key"))
                if up is None:
                    sys.exit(f"refused: response {r['id']}: unknown upload")
                if up["file_key"] in paths:
                    continue
                stem, dot, ext = safe_name(up["file_name"]).rpartition(".")
                if not dot:
                    stem, ext = ext, ""
                base, n = f"files/{up['submission_id']}_", 1
                name = base + stem + dot + ext
                while name.lower() in taken:
                    n += 1
                    name = f"{base}{stem}-{n}{dot}{ext}"
                taken.add(name.lower())
                paths[up["file_key"]] = name

    def response_out(r, with_sub):
        answer = r["response"]["answer"]
        if r["response"]["type"] == "file_upload":
            answer = [dict(a, path=paths[a["file_key"]]) for a in answer]
        o = {"response_id": r["id"], "instruction_id": r["response"]["instruction_id"],
             "type": r["response"]["type"], "answer": answer,
             "correlation_id": r.get("correlation_id"), "created_at": r.get("created_at")}
        if with_sub:
            sub = submissions[r["submission_id"]]
            o["submission_id"], o["participant_id"] = sub["id"], sub["participant_id"]
        known = {"id", "submission_id", "task_id", "participant_id", "response", "correlation_id", "created_at"}
        o.update({k: v for k, v in r.items() if k not in known and k not in o})
        return o

    dump_line = lambda o: json.dumps(o, ensure_ascii=False, separators=(",", ":")) + "\n"
    sub_lines = []
    for sid in sorted(by_sub):
        sub, groups = submissions[sid], {}
        for r in by_sub[sid]:
            groups.setdefault(r["task_id"], []).append(response_out(r, False))
        o = {"submission_id": sid, "participant_id": sub["participant_id"]}
        for k in ("study_id", "status", "started_at", "completed_at"):
            o[k] = sub.get(k)
        o["tasks"] = [{"task_id": t, "responses": rs} for t, rs in groups.items()]
        o.update({k: v for k, v in sub.items() if k not in o and k != "id"})
        sub_lines.append(dump_line(o))

    by_task = {}
    for r in exported:
        by_task.setdefault(r["task_id"], []).append(r)
    task_lines = []
    for t in tasks:
        rs = by_task.get(t["id"])
        if not rs:
            continue
        rs.sort(key=lambda r: (r["submission_id"],) + within(r))
        o = {"task_id": t["id"], "group_id": t.get("group_id"), "datapoint": t.get("datapoint"),
             "metadata": t.get("metadata"), "responses": [response_out(r, True) for r in rs]}
        o.update({k: v for k, v in t.items() if k not in o and k != "id"})
        task_lines.append(dump_line(o))

    stamps = [ts(v) for rec in [*submissions.values(), *responses]
              for k, v in rec.items() if k in ("created_at", "started_at", "completed_at")]
    stamps = [s for s in stamps if s is not None]
    generated = max(stamps).isoformat().replace("+00:00", "Z") if stamps else "1980-01-01T00:00:00Z"
    counts = {"submissions": len(sub_lines), "tasks": len(task_lines), "responses": len(exported),
              "files": len(paths), "excluded_no_submission": excluded}
    batch_out = dict(batch, instructions=instructions,
                     export={"format_version": 1, "generated_at": generated, "counts": counts})
    date_time = max(stamps).utctimetuple()[:6] if stamps else (1980, 1, 1, 0, 0, 0)

    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        def text(name, data):
            info = zipfile.ZipInfo(name, date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
        text("README.md", f"# Export of {batch['id']}\n\nCounts: {json.dumps(counts)}\n")
        text("batch.json", json.dumps(batch_out, ensure_ascii=False, indent=2) + "\n")
        text("responses-by-submission.jsonl", "".join(sub_lines))
        text("responses-by-task.jsonl", "".join(task_lines))
        for key, name in sorted(paths.items(), key=lambda kv: kv[1]):
            up = uploads[key]
            ctype = (up.get("content_type") or "").split(";")[0].strip().lower()
            stored = ctype in COMPRESSED_TYPES or name.rsplit(".", 1)[-1].lower() in COMPRESSED_EXT
            info = zipfile.ZipInfo(name, date_time)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            src = os.path.join(dump, up.get("path") or os.path.join("uploads", key))
            sha, size = hashlib.sha256(), 0
            with open(src, "rb") as f, zf.open(info, "w", force_zip64=up["size_bytes"] > 2**31) as dst:
                class Tee:
                    def read(self, n=-1):
                        nonlocal size
                        chunk = f.read(n)
                        sha.update(chunk)
                        size += len(chunk)
                        return chunk
                shutil.copyfileobj(Tee(), dst, 1 << 20)
            if size != up["size_bytes"] or ("sha256" in up and sha.hexdigest() != up["sha256"]):
                os.remove(tmp)
                sys.exit(f"refused: upload {key}: size or sha256 mismatch")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
