#[test]
fn smoke() {
    for f in ["genomics", "baseline"] {
        let path = format!("{}/../../policies/{f}.policy", env!("CARGO_MANIFEST_DIR"));
        let mut s = warden_lang::Sources::new();
        s.add(path.clone(), std::fs::read_to_string(&path).unwrap());
        match warden_lang::compile_policy_set(&s) {
            Ok(o) => { println!("{}", o.policy_set.cedar_text()); println!("{}", o.policy_set.schema_text()); for w in o.warnings.iter() { println!("{:?}", miette::Report::new(w.clone())); } }
            Err(d) => { for e in d.iter() { println!("{:?}", miette::Report::new(e.clone())); } panic!() }
        }
    }
}
