//! `tokenize_geneformer` writes a Hugging Face `save_to_disk` dataset whose Arrow schema,
//! metadata and tokens are what `datasets.load_from_disk` and upstream Geneformer expect.

use std::sync::Arc;

use scfm::core::arrow_array::cast::AsArray;
use scfm::core::arrow_array::types::{Float32Type, Int16Type, Int32Type, Int64Type};
use scfm::core::arrow_array::{ListArray, RecordBatch};
use scfm::core::arrow_schema::{DataType, Field, Schema};
use scfm::io::hf::{HfDataset, HfDatasetWriter};
use scfm::pipeline::{TokenizeOptions, TokenizerSpec, tokenize};
use scfm::tokenize::geneformer::GeneformerSpec;
use scfm::tokenize::scbert::ScBertSpec;
use scfm::tokenize::scgpt::ScGptSpec;
use scfm::tokenize::xtrimogene::XTrimoGeneSpec;

use crate::data;

fn safetensors_i64(path: &std::path::Path, name: &str) -> Vec<i64> {
    let b = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let h: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let off = h[name]["data_offsets"].as_array().unwrap();
    let (a, z) = (off[0].as_u64().unwrap() as usize, off[1].as_u64().unwrap() as usize);
    b[8 + n + a..8 + n + z].chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn geneformer_dataset_has_the_upstream_layout_and_tokens() {
    let out = tempfile::tempdir().unwrap();
    let gf: TokenizerSpec = GeneformerSpec::<2>::in_dir(&data("vocab/geneformer")).unwrap().into();
    let opts = TokenizeOptions { obs_columns: vec!["trueLabel".into()], ..Default::default() };
    let input = data("h5ad/pbmc_sorted_3k5_train.h5ad");
    let scheme = gf;
    let report = tokenize(&input, out.path(), &scheme, &opts, &mut |_, _| {}).unwrap();
    assert_eq!((report.cells_in, report.cells_out), (2800, 2800));
    assert_eq!(report.settings["collapsed_duplicates"], true, "pbmc symbols take upstream's collapse branch");

    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(state["_data_files"][0]["filename"], "data-00000-of-00001.arrow");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("dataset_info.json")).unwrap()).unwrap();
    assert_eq!(info["features"]["input_ids"]["_type"], "Sequence");
    assert_eq!(info["features"]["input_ids"]["feature"]["dtype"], "int32");
    assert_eq!(info["features"]["length"]["dtype"], "int64");
    assert_eq!(info["features"]["trueLabel"]["dtype"], "string");
    assert!(out.path().join("scfm_tokenizer.json").exists(), "the tokenizer spec is saved next to the data");
    // … as a value that reads back equal to the scheme's.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("scfm_tokenizer.json")).unwrap()).unwrap();
    let spec: scfm::tokenize::TokenizerSpec = serde_json::from_value(saved["spec"].clone()).unwrap();
    assert_eq!(spec, scheme);
    let token_dictionary = data("vocab/geneformer/token_dictionary_gc104M.pkl");
    assert_eq!((spec.name(), spec.vocabulary()), ("geneformer-v2", token_dictionary.as_path()));

    // The data file is an Arrow IPC *stream* with the `huggingface` schema metadata.
    let f = std::fs::File::open(out.path().join("data-00000-of-00001.arrow")).unwrap();
    let reader = arrow_ipc::reader::StreamReader::try_new(f, None).unwrap();
    let schema = reader.schema();
    assert!(schema.metadata().contains_key("huggingface"));
    assert!(matches!(schema.field(0).data_type(), DataType::List(f) if f.data_type() == &DataType::Int32));
    assert_eq!(schema.field(2).data_type(), &DataType::Utf8, "categoricals are written as strings");
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let fixture = data("parity/tokenizers/geneformer_v2_pbmc_train_first300.safetensors");
    let (ids, offsets) = (safetensors_i64(&fixture, "input_ids"), safetensors_i64(&fixture, "offsets"));
    let mut row = 0;
    'outer: for b in &batches {
        let list = b.column(0).as_list::<i32>();
        let lengths = b.column(1).as_primitive::<scfm::core::arrow_array::types::Int64Type>();
        for i in 0..b.num_rows() {
            if row + 1 >= offsets.len() {
                break 'outer;
            }
            let got: Vec<i64> =
                list.value(i).as_primitive::<Int32Type>().values().iter().map(|&x| i64::from(x)).collect();
            assert_eq!(got, ids[offsets[row] as usize..offsets[row + 1] as usize], "cell {row}");
            assert_eq!(lengths.value(i), got.len() as i64);
            row += 1;
        }
    }
    assert_eq!(row, offsets.len() - 1, "every fixture cell compared");
}

/// All `input_ids` of a written dataset (int16 for Geneformer V1, int32 otherwise), in order.
fn read_ids(dir: &std::path::Path) -> Vec<Vec<i32>> {
    let f = std::fs::File::open(dir.join("data-00000-of-00001.arrow")).unwrap();
    let reader = arrow_ipc::reader::StreamReader::try_new(f, None).unwrap();
    let mut out = vec![];
    for b in reader.map(Result::unwrap) {
        let list = b.column(0).as_list::<i32>();
        for i in 0..b.num_rows() {
            let ids = list.value(i);
            out.push(match ids.data_type() {
                DataType::Int16 => ids.as_primitive::<Int16Type>().values().iter().map(|&t| i32::from(t)).collect(),
                _ => ids.as_primitive::<Int32Type>().values().to_vec(),
            });
        }
    }
    out
}

#[test]
fn tokens_do_not_depend_on_chunk_size_or_threads() {
    let gf: TokenizerSpec = GeneformerSpec::<2>::in_dir(&data("vocab/geneformer")).unwrap().into();
    let input = data("h5ad/pbmc_sorted_train_490.h5ad");
    let mut results = vec![];
    for (chunk_cells, threads) in [(7, 1), (64, 2), (64, 3), (10_000, 1), (10_000, 4)] {
        let out = tempfile::tempdir().unwrap();
        let opts = TokenizeOptions { chunk_cells, threads: Some(threads), ..Default::default() };
        let scheme = gf.clone();
        tokenize(&input, out.path(), &scheme, &opts, &mut |_, _| {}).unwrap();
        results.push(read_ids(out.path()));
    }
    assert_eq!(results[0].len(), 490);
    assert!(results.windows(2).all(|w| w[0] == w[1]), "identical datasets for every chunk size and thread count");
}

#[test]
fn a_bad_value_late_in_the_file_is_an_error_for_any_number_of_threads() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("late_damage.h5ad");
    std::fs::copy(data("h5ad/pbmc_sorted_train_490.h5ad"), &input).unwrap();
    let mut perm = std::fs::metadata(&input).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&input, perm).unwrap();
    {
        // A negative count in one of the last cells: the first chunks tokenize fine.
        let file = hdf5::File::open_rw(&input).unwrap();
        let values = file.dataset("X/data").unwrap();
        let mut v: Vec<i32> = values.read_raw().unwrap();
        let n = v.len();
        v[n - 10] = -3;
        values.write_raw(&v).unwrap();
    }
    let gf: TokenizerSpec = GeneformerSpec::<2>::in_dir(&data("vocab/geneformer")).unwrap().into();
    let scheme = gf;
    for threads in [1, 2, 5] {
        let out = dir.path().join(format!("out_{threads}"));
        let opts = TokenizeOptions { chunk_cells: 16, threads: Some(threads), ..Default::default() };
        let mut written = 0;
        let err = tokenize(&input, &out, &scheme, &opts, &mut |done, _| written = done).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("late_damage.h5ad") && msg.contains("-3"), "threads = {threads}: {msg}");
        // Every chunk before the damaged one was written, in order; none after it.
        assert_eq!(written, 480, "threads = {threads}");
    }
}

#[test]
fn memory_mapped_datasets_read_every_row_in_any_order() {
    // scfm tokenize's output, rows read backwards (as a shuffled training run reads them).
    let gf: TokenizerSpec = GeneformerSpec::<2>::in_dir(&data("vocab/geneformer")).unwrap().into();
    let out = tempfile::tempdir().unwrap();
    let scheme = gf;
    tokenize(&data("h5ad/pbmc_sorted_train_490.h5ad"), out.path(), &scheme, &Default::default(), &mut |_, _| {})
        .unwrap();
    let expected = read_ids(out.path());
    let dataset = HfDataset::open(out.path()).unwrap();
    assert_eq!(dataset.len(), expected.len());
    assert_eq!(dataset.list_lengths("input_ids").unwrap(), expected.iter().map(Vec::len).collect::<Vec<_>>());
    for row in (0..dataset.len()).rev() {
        let want: Vec<u32> = expected[row].iter().map(|&t| t as u32).collect();
        assert_eq!(dataset.ids("input_ids", row).unwrap(), want, "row {row}");
    }
    assert!(matches!(dataset.ids("no_such_column", 0), Err(scfm::io::IoError::UnknownColumn { .. })));
    assert!(dataset.floats("input_ids", 0).is_err(), "int32 ids are not float values");

    // Several data files (shards of 100 rows), int64 ids and float values.
    let sharded = tempfile::tempdir().unwrap();
    let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
    let schema = Schema::new(vec![
        Field::new("input_ids", list(DataType::Int64), true),
        Field::new("values", list(DataType::Float32), true),
    ]);
    let mut writer = HfDatasetWriter::create(sharded.path(), &schema, 100).unwrap();
    let cells: Vec<Vec<i64>> = expected.iter().map(|c| c.iter().map(|&t| i64::from(t)).collect()).collect();
    for chunk in cells.chunks(64) {
        let ids =
            ListArray::from_iter_primitive::<Int64Type, _, _>(chunk.iter().map(|c| Some(c.iter().map(|&t| Some(t)))));
        let values = ListArray::from_iter_primitive::<Float32Type, _, _>(
            chunk.iter().map(|c| Some(c.iter().map(|&t| Some(t as f32 / 2.0)))),
        );
        let batch = RecordBatch::try_new(Arc::new(schema.clone()), vec![Arc::new(ids), Arc::new(values)]).unwrap();
        writer.write(&batch).unwrap();
    }
    writer.finish().unwrap();
    let dataset = HfDataset::open(sharded.path()).unwrap();
    assert_eq!(
        std::fs::read_dir(sharded.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "arrow"))
            .count(),
        5
    );
    assert_eq!(dataset.len(), 490);
    for row in [489, 0, 250, 99, 100, 399, 400] {
        let want: Vec<u32> = cells[row].iter().map(|&t| t as u32).collect();
        assert_eq!(dataset.ids("input_ids", row).unwrap(), want, "row {row}");
        let halves: Vec<f32> = cells[row].iter().map(|&t| t as f32 / 2.0).collect();
        assert_eq!(dataset.floats("values", row).unwrap(), halves, "row {row}");
    }
}

#[test]
fn ensembl_only_inputs_map_through_gencode_and_unknown_genes_can_be_refused() {
    use scfm::pipeline::{TieMode, UnknownGenePolicy};
    use scfm::tokenize::scgpt::ScGptSequence;
    let input = data("h5ad/cellbench_celseq2_5cl.h5ad");
    let scbert = ScBertSpec::new(data("vocab/scbert/vocab_gene2vec_16906.pkl")).into();
    let out = tempfile::tempdir().unwrap();
    // Ensembl ids only: nothing matches scBERT's symbols…
    let err = tokenize(&input, out.path(), &scbert, &TokenizeOptions::default(), &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("none of its 12653 genes"), "{err}");
    // …until GENCODE translates them.
    let opts = TokenizeOptions {
        gene_table: Some(data("vocab/gene_ids/gencode_v48_genes_homo_sapiens.csv.gz")),
        ..Default::default()
    };
    let report = tokenize(&input, out.path(), &scbert, &opts, &mut |_, _| {}).unwrap();
    assert!(report.genes_mapped > 8_000, "{} genes mapped", report.genes_mapped);
    let scgpt = TokenizerSpec::from(ScGptSpec::new(
        data("vocab/scgpt/default_census_vocab.json"),
        &ScGptSequence::zero_shot(0),
        TieMode::NumpyLegacy,
    ));
    let report = tokenize(&input, out.path(), &scgpt, &opts, &mut |_, _| {}).unwrap();
    assert!(report.genes_mapped > 10_000);
    let strict = TokenizeOptions { unknown_genes: UnknownGenePolicy::Error, ..opts };
    let err = tokenize(&input, out.path(), &scgpt, &strict, &mut |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("are not in the model's vocabulary") && err.contains("ENSG"), "{err}");
}

#[test]
fn scgpt_legacy_bins_do_not_depend_on_chunk_size() {
    use scfm::pipeline::TieMode;
    use scfm::tokenize::scgpt::ScGptSequence;
    let input = data("h5ad/pbmc_sorted_train_490.h5ad");
    let scheme = TokenizerSpec::from(ScGptSpec::new(
        data("vocab/scgpt/default_census_vocab.json"),
        &ScGptSequence::zero_shot(0),
        TieMode::NumpyLegacy,
    ));
    let mut results = vec![];
    for chunk_cells in [13, 5000] {
        let out = tempfile::tempdir().unwrap();
        tokenize(&input, out.path(), &scheme, &TokenizeOptions { chunk_cells, ..Default::default() }, &mut |_, _| {})
            .unwrap();
        results.push((read_ids(out.path()), read_values(out.path())));
    }
    assert_eq!(results[0], results[1], "ids and binned values");
    assert!(results[0].1.iter().flatten().any(|&v| v > 1.0), "values hold bins");
}

/// All `values` (column 1) of a written dataset, in order.
fn read_values(dir: &std::path::Path) -> Vec<Vec<f32>> {
    use scfm::core::arrow_array::types::Float32Type;
    let f = std::fs::File::open(dir.join("data-00000-of-00001.arrow")).unwrap();
    let reader = arrow_ipc::reader::StreamReader::try_new(f, None).unwrap();
    let mut out = vec![];
    for b in reader.map(Result::unwrap) {
        let list = b.column(1).as_list::<i32>();
        for i in 0..b.num_rows() {
            out.push(list.value(i).as_primitive::<Float32Type>().values().to_vec());
        }
    }
    out
}

#[test]
fn xtrimogene_datasets_carry_the_raw_counts_that_pretraining_down_samples() {
    use scfm::prelude::CellSource;
    use scfm::tokenize::vocab::scfoundation_genes;
    use scfm::tokenize::xtrimogene::{DepthTarget, XTrimoGeneTokenizer};
    let input = data("h5ad/pbmc_sorted_train_490.h5ad");
    let genes = data("vocab/scfoundation/OS_scRNA_gene_index.19264.tsv");
    let scheme = XTrimoGeneSpec::new(genes.clone(), DepthTarget::Fixed(4.0)).into();
    let out = tempfile::tempdir().unwrap();
    let report = tokenize(&input, out.path(), &scheme, &TokenizeOptions::default(), &mut |_, _| {}).unwrap();
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("dataset_info.json")).unwrap()).unwrap();
    assert_eq!(info["features"]["count_positions"]["feature"]["dtype"], "int32");
    assert_eq!(info["features"]["counts"]["feature"]["dtype"], "float32");

    // The counts are each cell's raw counts on the model's gene positions, as read from the file.
    let tokenizer = XTrimoGeneTokenizer::new(scfoundation_genes(&genes).unwrap(), DepthTarget::Fixed(4.0));
    let opts = scfm::io::SourceOptions {
        matrix: scfm::io::MatrixSelector::Counts,
        obs: scfm::io::ObsSelection::None,
        require_counts: true,
    };
    let source = scfm::io::AnySource::open(&input, &opts).unwrap();
    let plan = tokenizer.plan(source.genes());
    let chunk = source.chunks(source.n_cells()).next().unwrap().unwrap();
    let dataset = HfDataset::open(out.path()).unwrap();
    let columns: Vec<&str> = dataset.schema().fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(columns, ["input_ids", "values", "count_positions", "counts", "length"]);
    assert_eq!((dataset.len(), report.cells_out), (chunk.n_cells(), chunk.n_cells()));
    let n_genes = tokenizer.seq_len() - 2;
    for row in 0..dataset.len() {
        let aligned = tokenizer.align_counts(&plan, chunk.cell(row));
        let positions = dataset.ids("count_positions", row).unwrap();
        let counts = dataset.floats("counts", row).unwrap();
        let expected: (Vec<u32>, Vec<f32>) = aligned.iter().map(|&(p, c)| (p, c as f32)).unzip();
        assert_eq!((positions.clone(), counts.clone()), expected, "row {row}");
        assert!(counts.iter().all(|c| c.fract() == 0.0 && *c >= 0.0), "row {row}: integer counts");
        // The encoder's gene positions are the expressed ones among them, T and S follow.
        let ids = dataset.ids("input_ids", row).unwrap();
        let expressed: Vec<u32> = positions.iter().zip(&counts).filter(|&(_, &c)| c > 0.0).map(|(&p, _)| p).collect();
        assert_eq!(ids.iter().copied().filter(|&p| (p as usize) < n_genes).collect::<Vec<_>>(), expressed);
    }
}
