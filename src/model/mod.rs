//! The records of a batch dump, as typed structs.
//!
//! Fields the export interprets are typed; fields it only passes through keep
//! their JSON text untouched ([`RawJson`]), and fields it does not know at all
//! are kept, in input order, in each record's `extra` list so they reach the
//! archive wherever their record does.
//!
//! An export backend builds these directly from its own database rows; the
//! [`crate::dump`] module builds them from a dump directory.

pub(crate) mod depth;
pub(crate) mod file_keys;
pub(crate) mod line;
pub(crate) mod origin;
pub(crate) mod raw;

pub use depth::MAX_JSON_DEPTH;
pub use raw::{RawJson, RawObject};

/// An id or other short string of a record. Ids are short, so up to 24
/// bytes are kept inline rather than on the heap: half a million responses
/// cost millions of allocations fewer. Build one with `"r-1".into()`.
pub type Id = compact_str::CompactString;

/// Fields of a record the export does not interpret, in input order.
pub type ExtraFields = Vec<(String, RawJson)>;

/// The batch itself. Its fields appear in the archive's `batch.json` as given.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The batch id.
    pub id: String,
    /// The batch's display name.
    pub name: String,
    /// The workspace the batch belongs to (the unit of access in the service).
    pub workspace_id: String,
    /// Every field of the record as given, `id`, `name` and `workspace_id`
    /// included, in input order: this is what `batch.json` starts from.
    pub fields: RawObject,
}

impl Batch {
    /// A batch with only its three required fields.
    pub fn new(id: &str, name: &str, workspace_id: &str) -> Batch {
        let mut fields = RawObject::default();
        fields.insert("id", RawJson::string(id));
        fields.insert("name", RawJson::string(name));
        fields.insert("workspace_id", RawJson::string(workspace_id));
        Batch {
            id: id.to_owned(),
            name: name.to_owned(),
            workspace_id: workspace_id.to_owned(),
            fields,
        }
    }
}

/// The five kinds of instruction, and so of answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstructionType {
    /// `{"value"}` items.
    FreeText,
    /// One `{"value"}` item per chosen option.
    MultipleChoice,
    /// `{"value", "explanation"}` items.
    MultipleChoiceWithFreeText,
    /// `{"value", "unit"}` items.
    FreeTextWithUnit,
    /// `{"file_key", "file_name", "file_size_mb", "content_type"}` items.
    FileUpload,
}

impl InstructionType {
    /// Every type, in the order the contract lists them.
    pub const ALL: [InstructionType; 5] = [
        InstructionType::FreeText,
        InstructionType::MultipleChoice,
        InstructionType::MultipleChoiceWithFreeText,
        InstructionType::FreeTextWithUnit,
        InstructionType::FileUpload,
    ];

    /// The type's name in the dump and the archive.
    pub fn as_str(self) -> &'static str {
        match self {
            InstructionType::FreeText => "free_text",
            InstructionType::MultipleChoice => "multiple_choice",
            InstructionType::MultipleChoiceWithFreeText => "multiple_choice_with_free_text",
            InstructionType::FreeTextWithUnit => "free_text_with_unit",
            InstructionType::FileUpload => "file_upload",
        }
    }

    /// Parses a type name; `None` for anything else.
    pub fn parse(name: &str) -> Option<InstructionType> {
        InstructionType::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
    }
}

/// The `response.type` of a response the participant was shown but did not answer.
pub const NO_SUBMISSION: &str = "no_submission";

/// One instruction (question) of the batch. Written to `batch.json` as given.
#[derive(Debug, Clone)]
pub struct Instruction {
    /// The instruction id.
    pub id: String,
    /// The instruction's type.
    pub kind: InstructionType,
    /// Every field of the record as given, in input order.
    pub fields: RawObject,
}

/// One task: a datapoint of the dataset that participants annotate.
#[derive(Debug, Clone, Default)]
pub struct Task {
    /// The task id.
    pub id: Id,
    /// The task's group, passed through.
    pub group_id: Option<RawJson>,
    /// The datapoint shown to participants, passed through.
    pub datapoint: Option<RawJson>,
    /// Free-form metadata, passed through.
    pub metadata: Option<RawJson>,
    /// Fields the export does not know, passed through.
    pub extra: ExtraFields,
}

/// One participant's submission.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// The submission id.
    pub id: Id,
    /// The participant who made it.
    pub participant_id: Id,
    /// The study the submission belongs to (what the `study_id` filter matches).
    pub study_id: Option<RawJson>,
    /// The submission's status, passed through.
    pub status: Option<RawJson>,
    /// When the participant started, passed through.
    pub started_at: Option<RawJson>,
    /// When the participant finished, passed through.
    pub completed_at: Option<RawJson>,
    /// Fields the export does not know, passed through.
    pub extra: ExtraFields,
}

/// One answer of one participant to one instruction on one task.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The response id.
    pub id: Id,
    /// The submission this response belongs to.
    pub submission_id: Id,
    /// The task answered.
    pub task_id: Id,
    /// `response.instruction_id`: the instruction answered.
    pub instruction_id: Id,
    /// `response.type`: the instruction's type name, or [`NO_SUBMISSION`].
    pub kind: Id,
    /// `response.answer`: the answer items, each passed through as given.
    pub answer: Vec<RawJson>,
    /// The participant, when the record names one (must match the submission's).
    pub participant_id: Option<Id>,
    /// Passed through.
    pub correlation_id: Option<RawJson>,
    /// When the answer was given; orders responses and is matched by time filters.
    pub created_at: Option<RawJson>,
    /// Fields the export does not know, passed through.
    pub extra: ExtraFields,
}

impl Response {
    /// True for a response the participant did not answer, which the export leaves out.
    pub fn is_no_submission(&self) -> bool {
        self.kind == NO_SUBMISSION
    }
}

/// A file a participant uploaded.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// The key answers use to refer to this upload.
    pub file_key: Id,
    /// The submission the upload belongs to.
    pub submission_id: Id,
    /// The name the participant's file had (made safe before use).
    pub file_name: String,
    /// The exact size of the bytes.
    pub size_bytes: u64,
    /// The declared MIME type, used to choose between storing and deflating.
    pub content_type: Option<String>,
    /// The expected SHA-256 of the bytes, as 32 raw bytes.
    pub sha256: Option<[u8; 32]>,
    /// Where the bytes are, relative to the dump (default `uploads/<file_key>`).
    pub path: Option<String>,
    /// Fields the export does not know.
    pub extra: ExtraFields,
}

/// All the records of one batch: the input of an export.
#[derive(Debug, Clone)]
pub struct Records {
    /// The batch.
    pub batch: Batch,
    /// Instructions, in instruction order.
    pub instructions: Vec<Instruction>,
    /// Tasks, in task order.
    pub tasks: Vec<Task>,
    /// Submissions, in any order.
    pub submissions: Vec<Submission>,
    /// Responses, in any order.
    pub responses: Vec<Response>,
    /// Uploads, in any order.
    pub uploads: Vec<Upload>,
}

impl Records {
    /// An empty batch, to be filled in by an embedding caller.
    pub fn new(batch: Batch) -> Records {
        Records {
            batch,
            instructions: Vec::new(),
            tasks: Vec::new(),
            submissions: Vec::new(),
            responses: Vec::new(),
            uploads: Vec::new(),
        }
    }
}
