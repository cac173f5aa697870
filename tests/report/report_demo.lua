-- A report with every kind of content, for the headless-browser check.
local m = model.load()
report.title("Report demo")
report.text("# Activations\nThe MLP of block 0 on a short prompt, with `blocks.0.mlp.hook_post`.\n\nA second paragraph.")
local _, cache = m:run_with_cache(tensor.new({ { 5, 17, 42, 7, 99 } }), { names = "blocks.0.mlp.hook_post" })
local acts = cache["blocks.0.mlp.hook_post"][0] -- [pos, d_mlp]
report.figure(figure.heatmap({ values = acts:narrow(1, 0, 40), title = "blocks.0.mlp.hook_post", xlabel = "unit",
  ylabel = "position" }), { name = "heatmap", caption = "Activations of the first 40 units" })
report.figure(figure.line({ series = { { y = acts:mean(0), label = "mean over positions" } }, title = "Mean activation",
  xlabel = "unit", ylabel = "activation" }), { caption = "Mean per unit" })
report.table("per position", { columns = { "position", "max", "argmax" },
  data = { position = { 0, 1, 2, 3, 4 }, max = acts:max(1), argmax = acts:argmax(1) } })
report.tensor("activations", acts, { caption = "for Python: safetensors.torch.load_file" })
report.html(figure.token_heatmap({ "a", " b", " c", " d", " e" }, acts:select(1, 3)))
tensor.manual_seed(7)
report.set({ experiment = "demo" })
print("report at " .. report.dir())
