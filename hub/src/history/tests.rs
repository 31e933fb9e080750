use super::codec::{decode, encode, MAX_UNPACKED};
use super::*;

pub(crate) use super::noisy;

#[test]
fn packed_points_come_back_the_same() {
    let points = noisy(20, 120, 1_800_000_000);
    for compress in [false, true] {
        let packed = encode(&points, compress);
        assert_eq!(decode(&packed, None).unwrap(), points);
    }
    let packed = encode(&points, true);
    let one = decode(&packed, Some("app-7")).unwrap();
    assert_eq!(one.len(), 120);
    assert!(one.iter().all(|p| &*p.container == "app-7"));
    assert!(decode(&packed, Some("nope")).unwrap().is_empty());
}

#[test]
fn a_block_of_noisy_points_is_under_eight_bytes_a_point() {
    let points = noisy(20, 120, 1_800_000_000);
    let packed = encode(&points, true);
    let per_point = packed.len() as f64 / points.len() as f64;
    assert!(per_point < 8.0, "{per_point:.2} bytes per point");
}

#[test]
fn malformed_packed_values_are_errors() {
    let packed = encode(&noisy(3, 10, 0), false);
    for cut in 0..packed.len() {
        // Any prefix either fails or decodes to fewer points; never a panic.
        let _ = decode(&packed[..cut], None);
    }
    assert!(decode(&[], None).is_err());
    assert!(decode(&[9, 1, 2], None).is_err());
    assert!(decode(&[2, 0xff, 0xff], None).is_err());
    // A deflate bomb: more zeros than the bound inflate from a small value.
    let mut z = flate2::write::DeflateEncoder::new(vec![2u8], flate2::Compression::best());
    std::io::Write::write_all(&mut z, &vec![0u8; MAX_UNPACKED as usize + 10]).unwrap();
    let bomb = z.finish().unwrap();
    assert!(decode(&bomb, None).is_err());
    // A section claiming more points than its bytes hold.
    let mut lying = vec![1u8, 0, 1, 1, b'a'];
    lying.extend([0xff, 0xff, 0x03, 2, 0, 0]);
    assert!(decode(&lying, None).is_err());
}

#[test]
fn points_merge_and_roll_up() {
    let p = |t: i64, cpu: i64, mem: i64, rx: i64| Point {
        t,
        container: "web".into(),
        n: 1,
        cpu_n: 1,
        cpu_avg: cpu,
        cpu_max: cpu,
        mem_avg: mem,
        mem_max: mem,
        net_rx: rx,
        state: "running".into(),
        ..Default::default()
    };
    let t0 = 1_800_000_000;
    let pts = vec![
        p(t0, 5000, 100, 1),
        p(t0 + 5, 10_003, 300, 2_600),
        p(t0 + 60, 100, 10, 3),
    ];
    let minute = roll_up(&pts, 60);
    assert_eq!(minute.len(), 2);
    assert_eq!(minute[0].t, t0);
    assert_eq!(
        (minute[0].n, minute[0].cpu_avg, minute[0].cpu_max),
        (2, 7500, 10_000)
    );
    // Rounded to the coarse tiers' precision: 0.1 % and whole KiB.
    assert_eq!(
        (minute[0].mem_avg, minute[0].mem_max, minute[0].net_rx),
        (200, 300, 2048)
    );
    // A point without CPU does not pull the CPU mean down.
    let mut none = p(t0, 0, 100, 4);
    none.cpu_n = 0;
    let merged = normalize(vec![p(t0, 5000, 100, 1), none]);
    assert_eq!(merged.len(), 1);
    assert_eq!(
        (merged[0].n, merged[0].cpu_n, merged[0].cpu_avg),
        (2, 1, 5000)
    );
    assert_eq!(merged[0].net_rx, 4);
    let api = to_api(&merged[0]);
    assert_eq!(api.cpu_avg, Some(50.0));
    assert_eq!(api.mem_avg, 102_400);
}

#[test]
fn every_window_rolls_into_whole_buckets_of_the_next_tier() {
    for t in TIERS {
        assert_eq!(t.window % t.res, 0, "{t:?}");
        assert!(t.keep >= t.window);
    }
    assert_eq!(tier(60).map(|t| t.window), Some(3600));
    assert_eq!(tier(7), None);
    assert_eq!(bucket(-1, 5), -5);
}
