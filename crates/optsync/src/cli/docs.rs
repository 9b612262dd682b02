//! `optsync generate-docs DIR` (hidden): man pages and shell completions generated from this
//! command-line definition, so the package ships documentation that cannot drift from it.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct GenerateDocsArgs {
    /// Directory to write into: `man/` (one page per command) and `completions/` (bash,
    /// zsh, fish) are made under it.
    dir: PathBuf,
}

pub fn run(a: GenerateDocsArgs) -> anyhow::Result<()> {
    let man = a.dir.join("man");
    let completions = a.dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let cmd = super::Cli::command();
    clap_mangen::generate_to(cmd.clone(), &man)
        .with_context(|| format!("writing man pages to {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "optsync", &completions)
            .with_context(|| format!("writing {shell} completions"))?;
    }
    println!(
        "man pages in {}, completions in {}",
        man.display(),
        completions.display()
    );
    Ok(())
}
