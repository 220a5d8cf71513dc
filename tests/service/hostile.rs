//! The service against hostile dumps and unlucky operators: links out of
//! a dump, error bodies that would show the server's paths, a state
//! folder left in disorder (a truncated store, archives without jobs, jobs
//! without archives).

use std::fs;
use std::os::unix::fs::symlink;

use batch_export::jobs::{DumpBuilder, Jobs, JobsConfig, ManualClock, Recovery};

use super::*;

/// Asserts that an answer names none of the test's server folders.
fn assert_no_server_path(answer: &Answer, dirs: &Dirs) {
    for dir in [dirs.data.path(), dirs.state.path()] {
        let dir = dir.to_string_lossy();
        assert!(
            !answer.text.contains(dir.as_ref()),
            "{} shows {dir}: {}",
            answer.status,
            answer.text
        );
    }
    // Every folder of these tests lives under the system's temp folder.
    let temp = std::env::temp_dir();
    assert!(
        !answer.text.contains(temp.to_string_lossy().as_ref()),
        "{}: {}",
        answer.status,
        answer.text
    );
}

#[test]
fn a_dangling_link_in_a_dump_is_no_server_error() {
    let dirs = Dirs::new();
    // Referenced by no record: the dump still builds.
    symlink("/nonexistent/batch-export-test", dirs.dump().join("stray")).unwrap();
    let server = TestServer::start(&dirs);
    let answer = server.post("");
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert_no_server_path(&answer, &dirs);
    let id = answer.json["export_id"].as_str().unwrap();
    assert_eq!(server.wait(id)["status"], "complete");
}

#[test]
fn an_upload_that_links_nowhere_fails_its_job_without_showing_paths() {
    let dirs = Dirs::new();
    let upload = dirs.dump().join("uploads/up-01");
    fs::remove_file(&upload).unwrap();
    symlink("/nonexistent/batch-export-test/photo.jpg", &upload).unwrap();
    let server = TestServer::start(&dirs);
    let answer = server.post("");
    assert_eq!(answer.status, 202, "{}", answer.text);
    let id = answer.json["export_id"].as_str().unwrap().to_owned();
    let status = server.status(&id);
    let final_status = server.wait(&id);
    assert_eq!(final_status["status"], "failed", "{final_status}");
    let reason = final_status["error"].as_str().unwrap();
    assert!(reason.contains("up-01"), "{reason}");
    assert_no_server_path(&status, &dirs);
    assert_no_server_path(&server.status(&id), &dirs);
}

#[test]
fn a_record_file_that_is_a_folder_fails_its_job_without_showing_paths() {
    let dirs = Dirs::new();
    let tasks = dirs.dump().join("tasks.jsonl");
    fs::remove_file(&tasks).unwrap();
    fs::create_dir(&tasks).unwrap();
    let server = TestServer::start(&dirs);
    let (id, status) = server.export("");
    assert_eq!(status["status"], "failed", "{status}");
    let reason = status["error"].as_str().unwrap();
    assert!(reason.contains("tasks.jsonl"), "{reason}");
    assert_no_server_path(&server.status(&id), &dirs);
}

#[test]
fn an_unreadable_data_folder_answers_without_showing_paths() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    fs::remove_dir_all(dirs.data.path()).unwrap();
    for method in ["POST", "GET"] {
        let answer = call(method, &server.export_url(BATCH), Some(TOKEN));
        assert_eq!(answer.status, 500, "{}", answer.text);
        assert!(answer.json["error"].is_string(), "{}", answer.text);
        assert_no_server_path(&answer, &dirs);
    }
}

fn open_jobs(dirs: &Dirs) -> Jobs {
    let clock = Arc::new(ManualClock::new(start_time()));
    Jobs::open(
        JobsConfig::new(dirs.state.path()).build_threads(1),
        Arc::new(DumpBuilder),
        clock,
    )
    .unwrap()
}

#[test]
fn a_truncated_job_store_is_reported_and_its_archives_moved_aside() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (id, status) = server.export("");
    assert_eq!(status["status"], "complete");
    server.stop();
    fs::File::create(dirs.state.path().join("jobs.sqlite3")).unwrap();

    let jobs = open_jobs(&dirs);
    let archive = dirs.state.path().join(format!("exports/{id}.zip"));
    let moved = dirs.state.path().join(format!("orphaned/{id}.zip"));
    assert_eq!(
        jobs.recovered(),
        [
            Recovery::EmptyStore {
                store: dirs.state.path().join("jobs.sqlite3"),
                archives: 1,
            },
            Recovery::OrphanArchive {
                from: archive.clone(),
                to: moved.clone(),
            },
        ]
    );
    assert!(!archive.exists());
    assert!(moved.is_file());
    jobs.shutdown();

    // Once in order, the next start finds nothing to fix.
    assert_eq!(open_jobs(&dirs).recovered(), []);
}

#[test]
fn a_complete_job_whose_archive_went_is_marked_failed() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (id, _) = server.export("");
    let (kept, _) = server.export("?study_id=st-2");
    server.stop();
    fs::remove_file(dirs.state.path().join(format!("exports/{id}.zip"))).unwrap();

    let jobs = open_jobs(&dirs);
    assert_eq!(
        jobs.recovered(),
        [Recovery::LostArchive {
            export_id: id.clone()
        }]
    );
    let job = jobs.get(BATCH, &id).unwrap();
    assert_eq!(job.status, batch_export::jobs::JobStatus::Failed);
    assert!(job.error.unwrap().contains("removed"));
    assert_eq!(
        jobs.get(BATCH, &kept).unwrap().status,
        batch_export::jobs::JobStatus::Complete
    );
}
