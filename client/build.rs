//! Embeds every file of `web-ui/` in the binary, so the inspector needs no files at run time.

include!("../shared-http/build/embed.rs");

fn main() {
    embed("web-ui", "The web UI's files", "web_ui.rs");
}
