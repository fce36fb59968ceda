//! Splitting a batch of import lines into waves that can run at once: no model appears twice
//! in a wave, so every model's commands still apply in line order, one wave after another.

use std::collections::HashSet;

/// Consecutive runs of `models` (each line's model, `None` for a line that touches none) in
/// which no model repeats and no run exceeds `max` lines; as index ranges, in order.
pub(crate) fn waves(models: &[Option<&str>], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut waves = Vec::new();
    let mut start = 0;
    let mut seen = HashSet::new();
    for (index, model) in models.iter().enumerate() {
        let repeats = model.is_some_and(|m| seen.contains(m));
        if repeats || index - start >= max.max(1) {
            waves.push(start..index);
            start = index;
            seen.clear();
        }
        if let Some(model) = model {
            seen.insert(*model);
        }
    }
    if start < models.len() {
        waves.push(start..models.len());
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_seen_again_starts_a_new_wave() {
        let models = [Some("a"), Some("b"), Some("a"), None, Some("c"), Some("b")];
        assert_eq!(waves(&models, 100), vec![0..2, 2..6]);
    }

    #[test]
    fn waves_are_bounded_and_cover_every_line_once() {
        let models: Vec<Option<&str>> = vec![None; 7];
        assert_eq!(waves(&models, 3), vec![0..3, 3..6, 6..7]);
        assert!(waves(&[], 3).is_empty());
    }

    #[test]
    fn register_then_activate_of_many_models_takes_two_waves() {
        let ids: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
        let models: Vec<Option<&str>> = ids
            .iter()
            .chain(ids.iter())
            .map(|id| Some(id.as_str()))
            .collect();
        assert_eq!(waves(&models, 100), vec![0..5, 5..10]);
    }
}
