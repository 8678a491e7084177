//! Checkpoint folders: persisting what a trial reported, and retention.

use super::Ckpt;
use std::path::Path;

/// Chooses checkpoints to delete so that `keep` remain; the latest is never deleted.
pub(crate) fn retention(cks: &mut Vec<Ckpt>, keep: usize) -> Vec<(u64, String)> {
    if cks.len() <= keep {
        return Vec::new();
    }
    let latest = cks.len() - 1;
    // Rank older checkpoints: by score when scored (higher is better), else by recency.
    let mut order: Vec<usize> = (0..latest).collect();
    order.sort_by(|&a, &b| match (cks[a].score, cks[b].score) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        _ => cks[b].iteration.cmp(&cks[a].iteration),
    });
    let drop: Vec<usize> = order.into_iter().skip(keep - 1).collect();
    let mut out = Vec::new();
    let mut i = 0;
    cks.retain(|c| {
        let d = drop.contains(&i);
        i += 1;
        if d {
            out.push((c.iteration, c.rel.clone()));
        }
        !d
    });
    out
}

/// Copies the reported checkpoint folders (one per rank that gave one, rank 0's first) into one
/// folder in the trial's (atomically: copy, then rename). Where two ranks wrote the same file, the
/// lower rank's copy is kept.
pub(crate) fn persist_checkpoint(srcs: &[std::path::PathBuf], dst: &Path) -> std::io::Result<()> {
    if srcs.len() == 1 && srcs[0] == dst {
        return Ok(());
    }
    let tmp = dst.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    for src in srcs {
        copy_dir(src, &tmp)?;
    }
    crate::failpoint("checkpoint_copied");
    if dst.exists() {
        std::fs::remove_dir_all(dst)?;
    }
    std::fs::rename(&tmp, dst)?;
    crate::failpoint("checkpoint_renamed");
    Ok(())
}

fn copy_dir(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let ty = e.file_type()?;
        let to = dst.join(e.file_name());
        if ty.is_dir() {
            copy_dir(&e.path(), &to)?;
        } else if !to.exists() {
            std::fs::copy(e.path(), to)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ck(iteration: u64, score: Option<f64>) -> Ckpt {
        Ckpt { iteration, rel: format!("c{iteration}"), score }
    }

    #[test]
    fn retention_keeps_the_latest_and_the_best() {
        let mut cks = vec![ck(1, None), ck(2, None), ck(3, None), ck(4, None)];
        let gone = retention(&mut cks, 2);
        assert_eq!(gone.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(cks.iter().map(|c| c.iteration).collect::<Vec<_>>(), vec![3, 4]);
        let mut cks = vec![ck(1, Some(9.0)), ck(2, Some(1.0)), ck(3, Some(5.0)), ck(4, Some(0.0))];
        let gone = retention(&mut cks, 2);
        assert_eq!(gone.iter().map(|g| g.0).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(cks.iter().map(|c| c.iteration).collect::<Vec<_>>(), vec![1, 4], "best and latest kept");
    }
}
