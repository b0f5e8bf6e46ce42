"""DA6401 Assignment 2: the reusable code behind the notebooks, one concept per file.

Lower files never import higher ones:
- settings and files: runtime (settings, paths, atomic writes), bootstrap (the notebooks' setup cell),
  tracking (W&B online or offline);
- data: sources (find, download, demo set), decode (each image once), data (cache, split, batches);
- model: model (CNNConfig, CNN), formulas (parameters and MACs), augment, train (the engine);
- sweep: runs_table (storage), sweep_controller (draws, hyperband), sweep, estimate (its time);
- answers: runs_frame (the runs as a table), evidence, effects (Question 3's joint model), sweep_plots
  (Questions 2 and 3), plots, viz (Question 4), finetune;
- hand-in: report_content (the answers, recomputed), report_html (the offline copy), report (W&B).
The notebooks import what they need: `from shared import data, model`. Measurement tools live beside the
package, in benchmarks/.
"""
