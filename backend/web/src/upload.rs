//! Files in and out of the pages. In: one uploaded file from a `multipart/form-data` form
//! (with its `csrf` field), the staff import's spreadsheet and a person's enrolment photo; the
//! size is checked before the body is read when the request declares it, and again as it
//! streams, so a 50 MB file is answered "too large" in words rather than read or cut off. Out:
//! a finished export (XLSX, the inspection zip) streamed from its temporary file, never held
//! in memory.

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::io::{Seek, SeekFrom};

/// One file and the form's CSRF token.
pub struct Upload {
    pub csrf: String,
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// Why no file could be taken from the form.
#[derive(Debug, PartialEq, Eq)]
pub enum UploadError {
    TooLarge,
    NoFile,
}

/// Room for the multipart framing around the largest file.
pub const FRAMING_BYTES: usize = 64 * 1024;

/// The field named `file` (at most `max` bytes) and the `csrf` field of the form.
pub async fn read_upload(
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
    max: usize,
) -> Result<Upload, UploadError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max + FRAMING_BYTES) {
        return Err(UploadError::TooLarge);
    }
    let mut multipart = multipart.map_err(|_| UploadError::NoFile)?;
    let too_large = |status: StatusCode| {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            UploadError::TooLarge
        } else {
            UploadError::NoFile
        }
    };
    let mut csrf = String::new();
    let mut file = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| too_large(e.status()))?
    {
        match field.name() {
            Some("csrf") => csrf = field.text().await.unwrap_or_default(),
            Some("file") => {
                let file_name = field.file_name().unwrap_or("").to_string();
                let bytes = field.bytes().await.map_err(|e| too_large(e.status()))?;
                if bytes.len() > max {
                    return Err(UploadError::TooLarge);
                }
                file = Some((file_name, bytes.to_vec()));
            }
            _ => {}
        }
    }
    let (file_name, bytes) = file.ok_or(UploadError::NoFile)?;
    if bytes.is_empty() && file_name.is_empty() {
        return Err(UploadError::NoFile);
    }
    Ok(Upload {
        csrf,
        file_name,
        bytes,
    })
}

/// A download of a finished file, read from the start as the response streams.
pub fn download(
    mut file: std::fs::File,
    content_type: &str,
    name: &str,
) -> std::io::Result<Response> {
    file.seek(SeekFrom::Start(0))?;
    let len = file.metadata()?.len();
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
