//! Guards how keel takes its settings as etcd does: `ETCD_*` environment
//! variables, and `--config-file` with etcd's YAML keys replacing the other
//! flags — checked through the member list of the real binary.

mod common;

use common::{client, free_port, runtime, scratch_dir, Keel};

fn member_name(keel: &Keel) -> String {
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let members = client.member_list().await.unwrap();
        members.members()[0].name().to_string()
    })
}

#[test]
fn environment_names_the_member() {
    let dir = scratch_dir("config-env");
    let keel = Keel::start_with_env(
        &dir.join("data"),
        free_port(),
        &[],
        &[("ETCD_NAME", "from-env")],
    );
    assert_eq!(member_name(&keel), "from-env");
}

#[test]
fn config_file_sets_what_it_names() {
    let dir = scratch_dir("config-file");
    let port = free_port();
    let data_dir = dir.join("data");
    let path = dir.join("keel.conf.yml");
    std::fs::write(
        &path,
        format!(
            "name: from-file\ndata-dir: {}\nlisten-client-urls: http://127.0.0.1:{port}\nmax-txn-ops: 64\n",
            data_dir.display()
        ),
    )
    .unwrap();
    // The harness's own --data-dir/--listen-client-urls are ignored once a
    // config file is given, as etcd ignores flags then; the file has the same.
    let keel = Keel::start_with(
        &data_dir,
        port,
        &["--config-file", path.to_str().unwrap(), "--name", "ignored"],
    );
    assert_eq!(member_name(&keel), "from-file");
    assert!(
        data_dir.join("member/wal").is_dir(),
        "the file's data-dir is used"
    );
}
