//! The safe pickle reader on hand-written pickles: refusals, small values, bombs.

use ember_data::formats::pickle::{Value, parse};

#[test]
fn refuses_code_execution() {
    // pickle.dumps of os.system("echo hi"), protocol 2.
    let evil = b"\x80\x02cposix\nsystem\nq\x00X\x07\x00\x00\x00echo hiq\x01\x85q\x02Rq\x03.";
    let e = parse("evil", evil).unwrap_err();
    assert!(e.found.contains("posix.system"), "{e}");
    // Protocol 0 and opcodes outside the set.
    assert!(parse("p0", b"(lp0\nI1\na.").is_err());
    assert!(parse("p1", b"\x80\x01K\x01.").is_err());
}

#[test]
fn small_values() {
    let v = parse("x", b"\x80\x02}q\x00(U\x01aK\x07X\x01\x00\x00\x00b]q\x01(K\x01M\x00\x01J\xff\xff\xff\xffe\x88\x89\x8a\x02\x00\x80\x86u.").unwrap();
    assert_eq!(v.get("a"), Some(&Value::Int(7)));
    assert_eq!(
        v.get("b"),
        Some(&Value::List(vec![
            Value::Int(1),
            Value::Int(256),
            Value::Int(-1)
        ]))
    );
}

#[test]
fn lying_lengths_and_bombs_are_errors() {
    // A BINSTRING claiming 2 GB in a tiny file.
    assert!(parse("x", b"\x80\x02T\xff\xff\xff\x7fabc.").is_err());
    assert!(parse("x", b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xffabc.").is_err());
    // A list of 1000 ints fetched from the memo 1000 times.
    let mut p = b"\x80\x02](".to_vec();
    p.extend(std::iter::repeat_n(b"K\x01".as_slice(), 1000).flatten());
    p.extend(b"eq\x00(");
    p.extend(std::iter::repeat_n(b"h\x00".as_slice(), 1000).flatten());
    p.extend(b"l.");
    let e = parse("bomb", &p).unwrap_err();
    assert!(e.found.contains("too many copies"), "{e}");
    // Deep nesting.
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']'.to_owned(), 10_000));
    deep.extend(std::iter::repeat_n(b'a', 9_999));
    deep.push(b'.');
    assert!(parse("deep", &deep).is_err());
}
