"""An independent, deliberately plain reading of the contract's views.

Given a valid dump, prints one JSON document: the expected lines of
responses-by-submission.jsonl and responses-by-task.jsonl (as parsed JSON),
the expected files/ entry names, and the counts. The Rust tests compare the
archive the library writes against it on randomly generated dumps.

Written straight from the contract, sharing no code with the library.
Usage: python3 export_views.py DUMP_DIR
"""
import json
import os
import sys
import unicodedata
from datetime import datetime

KNOWN = {
    "task": {"id", "group_id", "datapoint", "metadata"},
    "submission": {"id", "participant_id", "study_id", "status", "started_at", "completed_at"},
    "response": {"id", "submission_id", "task_id", "response", "participant_id", "correlation_id", "created_at"},
}
DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return [json.loads(line) for line in f.read().split("\n") if line.strip()]


def instant(value):
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def created_key(response):
    t = instant(response.get("created_at"))
    return (0, 0.0) if t is None else (1, t)


def safe_name(name):
    name = name.replace("\\", "/").split("/")[-1]
    name = "".join(c for c in name if unicodedata.category(c) != "Cc")
    name = "".join("_" if c in '<>:"|?*' else c for c in name)
    name = name.rstrip(". ")
    if name.split(".")[0].rstrip(" ").upper() in DEVICES:
        name = "_" + name
    if not name:
        name = "file"
    if len(name.encode()) > 200:
        stem, ext = os.path.splitext(name)
        if len(ext.encode()) >= 200:
            stem, ext = name, ""
        budget = 200 - len(ext.encode())
        cut = stem.encode()[:budget].decode("utf-8", errors="ignore")
        name = cut + ext
    return name


def main(dump):
    instructions = read_jsonl(os.path.join(dump, "instructions.jsonl"))
    tasks = read_jsonl(os.path.join(dump, "tasks.jsonl"))
    submissions = {s["id"]: s for s in read_jsonl(os.path.join(dump, "submissions.jsonl"))}
    responses = read_jsonl(os.path.join(dump, "responses.jsonl"))
    uploads = {u["file_key"]: u for u in read_jsonl(os.path.join(dump, "uploads.jsonl"))}
    instruction_rank = {i["id"]: n for n, i in enumerate(instructions)}
    task_rank = {t["id"]: n for n, t in enumerate(tasks)}
    tasks_by_id = {t["id"]: t for t in tasks}

    exported = [r for r in responses if r["response"]["type"] != "no_submission"]
    excluded = len(responses) - len(exported)

    def within_task(r):
        return (instruction_rank[r["response"]["instruction_id"]], created_key(r), r["id"].encode())

    by_submission_order = sorted(
        exported, key=lambda r: (r["submission_id"].encode(), task_rank[r["task_id"]]) + within_task(r))

    # Name files in by-submission order: task, instruction, answer position.
    paths, taken = {}, set()
    for r in by_submission_order:
        if r["response"]["type"] != "file_upload":
            continue
        for item in r["response"]["answer"]:
            key = item["file_key"]
            if key in paths:
                continue
            upload = uploads[key]
            sid = "".join("_" if c in '/\\<>:"|?*' else c for c in upload["submission_id"]
                          if unicodedata.category(c) != "Cc")
            name = safe_name(upload["file_name"])
            stem, ext = os.path.splitext(name)
            n = 1
            while True:
                candidate = f"files/{sid}_{name}" if n == 1 else f"files/{sid}_{stem}-{n}{ext}"
                if candidate.lower() not in taken:
                    break
                n += 1
            taken.add(candidate.lower())
            paths[key] = candidate

    def response_view(r, with_submission):
        body = r["response"]
        answer = body["answer"]
        if body["type"] == "file_upload":
            answer = [dict(item, path=paths[item["file_key"]]) for item in answer]
        view = {
            "response_id": r["id"], "instruction_id": body["instruction_id"], "type": body["type"],
            "answer": answer, "correlation_id": r.get("correlation_id"), "created_at": r.get("created_at"),
        }
        if with_submission:
            s = submissions[r["submission_id"]]
            view["submission_id"] = s["id"]
            view["participant_id"] = s["participant_id"]
        for k, v in r.items():
            if k not in KNOWN["response"] and k not in view:
                view[k] = v
        return view

    lines_by_submission = []
    for r in by_submission_order:
        sid = r["submission_id"]
        if not lines_by_submission or lines_by_submission[-1]["submission_id"] != sid:
            s = submissions[sid]
            line = {"submission_id": sid, "participant_id": s["participant_id"]}
            for k in ("study_id", "status", "started_at", "completed_at"):
                line[k] = s.get(k)
            line["tasks"] = []
            for k, v in s.items():
                if k not in KNOWN["submission"] and k not in line:
                    line[k] = v
            lines_by_submission.append(line)
        task_list = lines_by_submission[-1]["tasks"]
        if not task_list or task_list[-1]["task_id"] != r["task_id"]:
            task_list.append({"task_id": r["task_id"], "responses": []})
        task_list[-1]["responses"].append(response_view(r, False))

    by_task_order = sorted(exported, key=lambda r: (task_rank[r["task_id"]], r["submission_id"].encode()) + within_task(r))
    lines_by_task = []
    for r in by_task_order:
        if not lines_by_task or lines_by_task[-1]["task_id"] != r["task_id"]:
            t = tasks_by_id[r["task_id"]]
            line = {"task_id": t["id"]}
            for k in ("group_id", "datapoint", "metadata"):
                line[k] = t.get(k)
            line["responses"] = []
            for k, v in t.items():
                if k not in KNOWN["task"] and k not in line:
                    line[k] = v
            lines_by_task.append(line)
        lines_by_task[-1]["responses"].append(response_view(r, True))

    json.dump({
        "responses-by-submission.jsonl": lines_by_submission,
        "responses-by-task.jsonl": lines_by_task,
        "files": sorted(paths.values()),
        "counts": {
            "submissions": len(lines_by_submission), "tasks": len(lines_by_task),
            "responses": len(exported), "files": len(paths), "excluded_no_submission": excluded,
        },
    }, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1])
