//! Embeds every file of `dashboard/` in the binary, so the admin dashboard needs no files
//! at run time.

include!("../shared-http/build/embed.rs");

fn main() {
    embed("dashboard", "The dashboard's files", "dashboard.rs");
}
