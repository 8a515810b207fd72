//! --help (and the man pages) name every option each tool takes, and every option the
//! corresponding mosquitto tool names (as taken, or as refused with the reason).
use super::*;

/// One of our tools, its mosquitto counterpart, and its bit in CLI_OPTS's `tools` column.
type Tool = (fn() -> Command, &'static str, &'static str);

fn tools() -> [Tool; 3] {
    [
        (our_pub, "mosquitto_pub", "CLI_PUB"),
        (our_sub, "mosquitto_sub", "CLI_SUB"),
        (|| Command::new(&cli_tools().2), "mosquitto_rr", "CLI_RR"),
    ]
}

/// The options a tool takes, read from the rows of CLI_OPTS in c_examples/cli_args.h
/// (`{"-t", "--topic", OPT_TOPIC, CLI_ALL, "topic"},`): each name and alias.
fn options_of(tool_bit: &str) -> Vec<String> {
    let source = std::fs::read_to_string(common::project_dir().join("c_examples/cli_args.h")).unwrap();
    let mut names = Vec::new();
    for row in source
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("{\"-") && l.contains(", OPT_"))
    {
        let fields: Vec<&str> = row.trim_start_matches('{').split(", ").collect();
        let tools = fields[3];
        if tools.contains("CLI_ALL") || tools.contains(tool_bit) {
            names.extend(
                fields[..2]
                    .iter()
                    .filter(|f| **f != "NULL")
                    .map(|f| f.trim_matches('"').to_string()),
            );
        }
    }
    assert!(
        names.len() > 30,
        "CLI_OPTS not found in c_examples/cli_args.h: {names:?}"
    );
    names
}

/// The options a help text describes: its lines " -x : ..." and " --long : ...".
fn described(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| l.strip_prefix(' ')?.split_once(" : ").map(|(name, _)| name.to_string()))
        .filter(|name| name.starts_with('-') && !name.contains(' '))
        .collect()
}

#[test]
fn help_describes_every_option_each_tool_takes() {
    for (ours, real_tool, bit) in tools() {
        let (code, help, _) = run(ours().arg("--help"));
        assert_eq!(code, 1, "{real_tool}: --help exits 1, as mosquitto's tools do");
        let described = described(&help);
        // Long aliases of short options (--topic for -t) are named in the man page.
        for name in options_of(bit)
            .into_iter()
            .filter(|n| !n.starts_with("--") || !is_alias(n))
        {
            assert!(
                described.contains(&name),
                "{real_tool}'s counterpart does not describe {name}:\n{help}"
            );
        }
    }
}

/// Whether a long option is the alias of a short one (the second column of its row).
fn is_alias(name: &str) -> bool {
    let source = std::fs::read_to_string(common::project_dir().join("c_examples/cli_args.h")).unwrap();
    source
        .lines()
        .any(|l| l.trim().starts_with("{\"-") && l.contains(&format!(", \"{name}\", OPT_")))
}

#[test]
fn help_names_every_option_mosquittos_tools_name() {
    for (ours, real_tool, _) in tools() {
        let (_, help, _) = run(ours().arg("--help"));
        let (_, real_help, _) = run(Command::new(real(real_tool)).arg("--help"));
        let theirs = described(&real_help);
        assert!(theirs.len() > 20, "{real_tool} --help: {real_help}");
        for name in theirs {
            assert!(
                help.contains(&name),
                "{real_tool} names {name}, our --help does not:\n{help}"
            );
        }
    }
}

/// --random-filter, read as mosquitto_sub 2.0 reads it: in tenths of a percent (its help says
/// percent), so 1000 prints every message and 100 about one in ten, for both tools; a chance out
/// of range is refused with its words.
#[test]
fn random_filter_prints_a_share_of_the_messages_as_mosquitto_sub_does() {
    let b = TestBroker::start();
    let lines: String = (0..1000).map(|i| format!("m{i}\n")).collect();
    let lines_file = b.dir.join("lines");
    std::fs::write(&lines_file, &lines).unwrap();
    for (chance, low, high) in [("1000", 1000, 1000), ("100", 50, 150)] {
        let args = ["-t", "cli/rf", "--random-filter", chance, "-W", "3"];
        let ours = start_sub(&b, &mut sub_cmd(&b, &args), &format!("ours-{chance}"), 1);
        let mut theirs = Command::new(real("mosquitto_sub"));
        let theirs = start_sub(
            &b,
            theirs.args(["-p", &b.port()]).args(args),
            &format!("theirs-{chance}"),
            1,
        );
        let publish = Command::new(real("mosquitto_pub"))
            .args(["-p", &b.port(), "-t", "cli/rf", "-q", "1", "-l"])
            .stdin(std::fs::File::open(&lines_file).unwrap())
            .output()
            .unwrap();
        assert!(publish.status.success());
        for (who, sub) in [("ours", ours), ("mosquitto_sub", theirs)] {
            let (code, out, _) = sub.finish(WAIT);
            let printed = out.lines().count();
            assert_eq!(code, 27, "{who}");
            assert!(
                (low..=high).contains(&printed),
                "{who} --random-filter {chance}: {printed} of 1000"
            );
        }
    }
    same_usage_error(our_sub, "mosquitto_sub", &["-t", "a", "--random-filter", "0"]);
    same_usage_error(our_sub, "mosquitto_sub", &["-t", "a", "--random-filter", "1001"]);
}

/// Each man page (man/<tool>.1, which `cmake --install` installs) describes every option its tool
/// takes, aliases included, and formats without a warning from groff.
#[test]
fn man_pages_describe_every_option_each_tool_takes() {
    let groff = real("groff");
    for (_, real_tool, bit) in tools() {
        let tool = real_tool.replace("mosquitto", "mqttc");
        let page = common::project_dir().join(format!("man/{tool}.1"));
        let source = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        let out = Command::new(&groff)
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{tool}.1: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The text with troff's escaped hyphens and font changes undone.
        let text = ["\\fB", "\\fI", "\\fR", "\\fP"]
            .iter()
            .fold(source.replace("\\-", "-"), |t, font| t.replace(font, ""));
        // The options of the OPTIONS section's entries: the line after each ".TP".
        let entries: Vec<&str> = text.split(".TP\n").skip(1).filter_map(|e| e.lines().next()).collect();
        for name in options_of(bit) {
            let listed = entries.iter().any(|e| e.split([',', ' ']).any(|word| word == name));
            assert!(listed, "{tool}.1 has no entry for {name}");
        }
    }
}
