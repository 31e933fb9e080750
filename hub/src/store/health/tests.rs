//! SQLite only: converting the earlier layout.
use super::*;
use rusqlite::{params, Connection};

/// A multiple of 86,400 (a day's block): every tier's window starts here.
const T0: i64 = 1_800_057_600;

#[test]
fn a_store_of_the_earlier_layout_is_converted_once() {
    let mut c = Connection::open_in_memory().unwrap();
    c.execute_batch(OLD_SCHEMA).unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute("INSERT INTO health_series VALUES (1, 'a', 'web')", [])
        .unwrap();
    for (res, bucket, n) in [(5, T0, 1), (5, T0 + 5, 1), (60, T0, 2), (900, T0, 2)] {
        c.execute(
            "INSERT INTO health_points VALUES (1, ?1, ?2, ?3, ?3, 1000 * ?3, 1000, 2048 * ?3, 2048, 4096, 7, 8, 0, 'running', NULL)",
            params![res, bucket, n],
        )
        .unwrap();
    }
    assert_eq!(compact::convert_old(&mut c).unwrap(), 4);
    assert!(!has_old(&mut c).unwrap());
    assert_eq!(compact::convert_old(&mut c).unwrap(), 0);
    let minute = query(&mut c, &mut Default::default(), "a", "web", 60, 0).unwrap();
    // Converted points are not rolled up again: the minute holds 2 samples.
    assert_eq!(minute.len(), 1);
    assert_eq!((minute[0].samples, minute[0].cpu_avg), (2, Some(10.0)));
    assert_eq!(minute[0].mem_avg, 2048);
    assert_eq!(
        query(&mut c, &mut Default::default(), "a", "web", 5, 0)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(containers(&mut c, "a").unwrap(), ["web"]);
    // Packing later finds no rows to roll up from them.
    assert_eq!(compact::compact(&mut c, T0 + 90_000, 100).unwrap(), 0);
    assert_eq!(
        query(&mut c, &mut Default::default(), "a", "web", 900, 0).unwrap()[0].samples,
        2
    );
}
