//! Static files built into a binary (the inspector's and the dashboard's pages): looking
//! one up by name, and the content type its extension gives.

/// Embedded files as (name, contents), as the build scripts write them.
pub type Files = &'static [(&'static str, &'static [u8])];

/// The contents of the file called `name`.
pub fn find(files: Files, name: &str) -> Option<&'static [u8]> {
    files.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The `Content-Type` of a file, from its extension.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}
