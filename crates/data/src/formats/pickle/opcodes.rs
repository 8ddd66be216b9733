//! The pickle opcodes the reader understands, by their names in Python's `pickletools`.

/// Protocol version (2 to 5) follows.
pub const PROTO: u8 = 0x80;
/// An 8-byte frame length follows; a size hint only.
pub const FRAME: u8 = 0x95;
/// The end: the value on the stack is the result.
pub const STOP: u8 = b'.';
/// Marks the stack for the next tuple, list or dict.
pub const MARK: u8 = b'(';
/// Pushes `{}`.
pub const EMPTY_DICT: u8 = b'}';
/// Pushes `[]`.
pub const EMPTY_LIST: u8 = b']';
/// Pushes `()`.
pub const EMPTY_TUPLE: u8 = b')';
/// Pushes `None`.
pub const NONE: u8 = b'N';
/// Pushes `True`.
pub const NEWTRUE: u8 = 0x88;
/// Pushes `False`.
pub const NEWFALSE: u8 = 0x89;
/// A 1-byte unsigned integer follows.
pub const BININT1: u8 = b'K';
/// A 2-byte unsigned integer follows.
pub const BININT2: u8 = b'M';
/// A 4-byte signed integer follows.
pub const BININT: u8 = b'J';
/// A little-endian two's-complement integer of the following byte's length follows.
pub const LONG1: u8 = 0x8a;
/// Bytes of a 1-byte length (protocol 2's `str`).
pub const SHORT_BINSTRING: u8 = b'U';
/// Bytes of a 1-byte length.
pub const SHORT_BINBYTES: u8 = b'C';
/// Bytes of a 4-byte signed length (protocol 2's `str`).
pub const BINSTRING: u8 = b'T';
/// Bytes of a 4-byte length.
pub const BINBYTES: u8 = b'B';
/// Bytes of an 8-byte length.
pub const BINBYTES8: u8 = 0x8e;
/// A bytearray of an 8-byte length (read as bytes).
pub const BYTEARRAY8: u8 = 0x96;
/// UTF-8 text of a 1-byte length.
pub const SHORT_BINUNICODE: u8 = 0x8c;
/// UTF-8 text of a 4-byte length.
pub const BINUNICODE: u8 = b'X';
/// UTF-8 text of an 8-byte length.
pub const BINUNICODE8: u8 = 0x8d;
/// Stores the top of the stack in the memo under a 1-byte key.
pub const BINPUT: u8 = b'q';
/// Stores the top of the stack in the memo under a 4-byte key.
pub const LONG_BINPUT: u8 = b'r';
/// Stores the top of the stack in the memo under the next key.
pub const MEMOIZE: u8 = 0x94;
/// Pushes a memo entry of a 1-byte key.
pub const BINGET: u8 = b'h';
/// Pushes a memo entry of a 4-byte key.
pub const LONG_BINGET: u8 = b'j';
/// A global given as two lines of text, module and name.
pub const GLOBAL: u8 = b'c';
/// A global from the two strings on the stack.
pub const STACK_GLOBAL: u8 = 0x93;
/// Builds a tuple of the top item.
pub const TUPLE1: u8 = 0x85;
/// Builds a tuple of the top three items (`TUPLE2` is between).
pub const TUPLE3: u8 = 0x87;
/// Builds a tuple of the items above the mark.
pub const TUPLE: u8 = b't';
/// Appends the top item to the list below it.
pub const APPEND: u8 = b'a';
/// Appends the items above the mark to the list below it.
pub const APPENDS: u8 = b'e';
/// Sets a key and value in the dict below them.
pub const SETITEM: u8 = b's';
/// Sets the key-value pairs above the mark in the dict below it.
pub const SETITEMS: u8 = b'u';
/// Calls a callable with an argument tuple.
pub const REDUCE: u8 = b'R';
/// Applies a state to an object (`__setstate__`).
pub const BUILD: u8 = b'b';
