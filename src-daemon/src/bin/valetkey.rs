//! `valetkey`: the Valet Key command-line client. See `valetkey --help`.

use clap::Parser;

fn main() {
    let cli = valetkey::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("valetkey: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(valetkey::cli::run(cli));
    std::process::exit(code);
}
