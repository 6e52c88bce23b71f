//! Content types: what a file's name says it holds, for `stat` and downloads.

/// The content type of a file named `name`, guessed from its extension (ASCII case ignored);
/// `"application/octet-stream"` when unknown.
pub fn kind_of(name: &str) -> &'static str {
    const KINDS: &[(&str, &str)] = &[
        ("txt", "text/plain"),
        ("md", "text/markdown"),
        ("csv", "text/csv"),
        ("html", "text/html"),
        ("htm", "text/html"),
        ("css", "text/css"),
        ("js", "text/javascript"),
        ("json", "application/json"),
        ("xml", "application/xml"),
        ("pdf", "application/pdf"),
        ("zip", "application/zip"),
        ("gz", "application/gzip"),
        ("tar", "application/x-tar"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("svg", "image/svg+xml"),
        ("mp3", "audio/mpeg"),
        ("wav", "audio/wav"),
        ("mp4", "video/mp4"),
        ("webm", "video/webm"),
    ];
    let Some((stem, extension)) = name.rsplit_once('.') else {
        return "application/octet-stream";
    };
    if stem.is_empty() {
        // ".bashrc": a hidden file's name, not an extension.
        return "application/octet-stream";
    }
    KINDS
        .iter()
        .find(|(ext, _)| ext.eq_ignore_ascii_case(extension))
        .map_or("application/octet-stream", |(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::kind_of;

    #[test]
    fn kinds_come_from_extensions() {
        assert_eq!(kind_of("a.txt"), "text/plain");
        assert_eq!(kind_of("photo.JPEG"), "image/jpeg");
        assert_eq!(kind_of("archive.tar.gz"), "application/gzip");
        assert_eq!(kind_of(".bashrc"), "application/octet-stream");
        assert_eq!(kind_of("Makefile"), "application/octet-stream");
        assert_eq!(kind_of("x.unknown"), "application/octet-stream");
    }
}
