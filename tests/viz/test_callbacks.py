"""LiveLossPlot collects the logged figures of a real CUTTrainer run and draws them."""

from __future__ import annotations

from cutkit.data.records import JudgmentRecord
from cutkit.models.lora import apply_lora
from cutkit.models.tiny import tiny_model
from cutkit.train.config import CUTConfig
from cutkit.train.trainer import CUTTrainer
from cutkit.viz.callbacks import LiveLossPlot

RECORDS = [
    JudgmentRecord("n1", "Capital of Australia?", "Sydney.", "Wrong: it is Canberra."),
    JudgmentRecord("p1", "Say hi.", "Hi!"),
]


def test_live_loss_plot_records_every_log(tokenizer, tmp_path):
    plot = LiveLossPlot(["loss", "loss/ul", "never/logged"], title="CUT")
    args = CUTConfig(
        output_dir=str(tmp_path),
        max_steps=3,
        logging_steps=1,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        warmup_steps=0,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        align_p_ratio=None,
    )
    trainer = CUTTrainer(
        apply_lora(tiny_model(), True), args, train_dataset=RECORDS, processing_class=tokenizer
    )
    trainer.add_callback(plot)
    trainer.train()
    assert [step for step, _ in plot.history["loss"]] == [1, 2, 3]
    assert [step for step, _ in plot.history["loss/ul"]] == [1, 2, 3]
    assert plot.history["never/logged"] == []
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert [value for _, value in plot.history["loss"]] == [float(v) for v in logged]
    axes = plot.figure().axes[0]
    assert [line.get_label() for line in axes.lines] == ["loss", "loss/ul"]
    assert axes.get_title() == "CUT"
