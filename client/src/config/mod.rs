//! ngrok v2's YAML configuration: keys, defaults, merging several files, and errors that
//! name the file, line, column and key. This is the only module that touches YAML, so the
//! YAML crate stays swappable.

pub mod file;
pub mod settings;
pub mod spec;

pub use file::{
    default_path, load, parse_console_ui, parse_text, save_authtoken, Config, ConfigError,
    ConsoleUi, ConsoleUiError, Loaded, Proto, Scalar, ServerAddr, TunnelConfig,
};

/// Merges the files in order (later ones win) and checks everything, each tunnel included,
/// naming the file and key that are wrong.
pub fn merge_all(files: &[Loaded]) -> Result<Config, ConfigError> {
    let cfg = file::merge_files(files)?;
    for (name, t) in cfg.tunnels.iter().flatten() {
        spec::from_config(name, t).map_err(|e| {
            ConfigError(format!(
                "invalid tunnel {name:?} in {}: {e}",
                file::where_defined(files, name)
            ))
        })?;
    }
    Ok(cfg)
}
