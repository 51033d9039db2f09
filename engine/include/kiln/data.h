/* kiln/data.h: datasets: the HDF5 file format, importers and chunked readers.
 *
 *   struct kiln_import_options opt = kiln_import_options_default();
 *   opt.name = "fashion-mnist";
 *   opt.idx_images = ".../train-images-idx3-ubyte.gz"; ...
 *   struct kiln_dataset *ds;
 *   if (kiln_data_import(&opt, &ds) == KILN_OK &&
 *       kiln_dataset_save(ds, "fashion-mnist.h5") == KILN_OK) ...
 *   kiln_dataset_free(ds);
 *
 * A dataset holds up to three splits (train, val, test), each with X
 * ([n, feature dims...], uint8 or float32) and y (int32 class indices [n], or
 * float32 targets [n, k]). uint8 features are scaled by 1/255 when batches
 * are formed (as torchvision's ToTensor does); float32 features are used as
 * they are. Its version id is the SHA-256 over the arrays' shapes and bytes
 * (docs/FORMATS.md gives the exact byte stream).
 */
#ifndef KILN_DATA_H
#define KILN_DATA_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/status.h"

enum kiln_dtype { KILN_DTYPE_U8, KILN_DTYPE_I32, KILN_DTYPE_F32 };

enum kiln_split_id { KILN_SPLIT_TRAIN, KILN_SPLIT_VAL, KILN_SPLIT_TEST, KILN_SPLIT_COUNT };

struct kiln_split {
    int64_t n;                  /* rows */
    int feat_ndim;              /* 1..3 */
    int64_t feat_shape[3];      /* per-row shape, e.g. [28, 28] or [784] */
    int64_t feat_size;          /* product of feat_shape */
    enum kiln_dtype x_dtype;    /* U8 or F32 */
    void *X;                    /* n * feat_size elements, row-major */
    enum kiln_dtype y_dtype;    /* I32 (classes) or F32 (targets) */
    int64_t y_dim;              /* 1 for classes; k for targets [n, k] */
    void *y;                    /* n * y_dim elements */
    /* Identifier columns kept as salted SHA-256 digests (CSV --hash-columns),
     * not features and not part of the content hash: hashed[c] holds n * 64
     * lower-case hex digits (no NULs), row i at hashed[c] + 64 * i. */
    int n_hashed;
    char **hashed_names;        /* [n_hashed] column names */
    char **hashed;              /* [n_hashed] */
};

struct kiln_dataset {
    char *name;
    char *source;               /* where it came from (paths, options) */
    char *created;              /* ISO 8601 UTC */
    char *parent;               /* parent version's sha256, or NULL */
    /* The fitted transforms that made these arrays from untransformed data,
     * the whole chain in order, as kiln_transform_list_to_json writes it
     * (kiln/transform.h); NULL when none. A model trained on the dataset
     * stores it and applies it to raw rows at predict time. */
    char *transforms;
    char sha256[65];            /* version id: content hash (kiln_dataset_hash) */
    int n_classes;              /* 0 for regression */
    char **classes;             /* n_classes names */
    int n_features;             /* 0 when unnamed */
    char **feature_names;
    struct kiln_split *splits[KILN_SPLIT_COUNT]; /* NULL when absent */
};

const char *kiln_split_name(enum kiln_split_id id); /* "train", "val", "test" */
/* KILN_ERR_USAGE for a name other than train/val/test. */
enum kiln_status kiln_split_parse(const char *name, enum kiln_split_id *out);

/* The one conversion of uint8 features to float: v * (1/255), the multiply
 * the gather_rows op does with scale KILN_U8_SCALE. Batch formation,
 * evaluation and kiln_rows_read all use it, so training and scoring see
 * bit-identical inputs (within 1 ulp of torchvision's v / 255). */
#define KILN_U8_SCALE (1.0f / 255.0f)
static inline float kiln_u8_to_f32(uint8_t v) { return (float)v * KILN_U8_SCALE; }

/* Size in bytes of one element of dtype. */
size_t kiln_dtype_size(enum kiln_dtype dt);

/* Allocates an empty split with the given shapes (X and y zeroed); caller
 * owns it (kiln_split_free). */
enum kiln_status kiln_split_create(int64_t n, int feat_ndim, const int64_t *feat_shape,
                                   enum kiln_dtype x_dtype, enum kiln_dtype y_dtype,
                                   int64_t y_dim, struct kiln_split **out);
void kiln_split_free(struct kiln_split *s);
/* Frees the dataset and everything it holds; NULL is fine. */
void kiln_dataset_free(struct kiln_dataset *ds);

/* Computes the content hash (lower-case hex) over every split's arrays. */
enum kiln_status kiln_dataset_hash(const struct kiln_dataset *ds, char out[65]);

/* Reads a whole kiln dataset file into memory; checks kiln_format and its
 * version, shapes, dtypes, label ranges, that float arrays hold no NaN/Inf,
 * and that the arrays hash to the stored sha256. KILN_ERR_IO when the file
 * cannot be read, KILN_ERR_FORMAT (naming split, row and column) otherwise.
 * Caller owns *out. */
enum kiln_status kiln_dataset_load(const char *path, struct kiln_dataset **out);
/* Reads only the root attributes and split shapes (no arrays): for `data show`
 * on files larger than memory. Splits come back with X and y NULL (and the
 * hashed columns' names, their hashed[] NULL). */
enum kiln_status kiln_dataset_load_header(const char *path, struct kiln_dataset **out);
/* Writes ds to path atomically (temp file, fsync, rename, fsync of the
 * folder) after the checks kiln_dataset_load makes; recomputes ds->sha256
 * and sets ds->created when empty. A failure leaves no file at path (an old
 * one stays) and no temp file; a folder that is missing or not writable is
 * KILN_ERR_IO naming the folder. */
enum kiln_status kiln_dataset_save(struct kiln_dataset *ds, const char *path);

/* Prints splits, shapes, dtypes, classes, hash, class balance or target
 * mean/std per split, and a summary of the first split's features (min, max,
 * mean, std overall and for the first up-to-16 features). A dataset from
 * kiln_dataset_load_header (no arrays) prints everything but the statistics. */
enum kiln_status kiln_dataset_describe(const struct kiln_dataset *ds, FILE *out);

/* --- import ---------------------------------------------------------------- */
enum kiln_fill { KILN_FILL_NONE, KILN_FILL_MEAN, KILN_FILL_ZERO };
enum kiln_task { KILN_TASK_AUTO, KILN_TASK_CLASSIFICATION, KILN_TASK_REGRESSION };

struct kiln_import_options {
    const char *name;           /* required */
    /* IDX (gzip or raw): train images and labels, optional test pair */
    const char *idx_images, *idx_labels, *test_idx_images, *test_idx_labels;
    /* IDX and HDF5 integer labels: comma-separated class names
     * ("T-shirt/top,Trouser,..."); NULL numbers them "0".."K-1", K = max
     * label + 1. CSV takes its class names from the label column. */
    const char *classes;
    /* CSV */
    const char *csv;
    const char *label;          /* label column name */
    char delimiter;             /* default ',' */
    enum kiln_fill fill;        /* missing / non-numeric feature handling */
    enum kiln_task task;        /* AUTO: text labels classify, numeric regress */
    /* HDF5 with named datasets */
    const char *h5;
    const char *h5_x, *h5_y;    /* dataset paths inside h5; default X and y */
    const char *h5_test_x, *h5_test_y; /* optional */
    /* CSV privacy: comma-separated column names. drop_columns are never read
     * into the dataset; hash_columns are kept out of the features and stored
     * per split as hex SHA-256(salt || value) (kiln_split.hashed), so that rows
     * can be joined back by whoever knows the salt. salt is required with
     * hash_columns (KILN_ERR_USAGE otherwise). */
    const char *drop_columns, *hash_columns, *salt;
    /* split when no test data is given (CSV, HDF5): stratified for classes */
    double test_fraction;       /* 0 = no test split */
    uint64_t seed;
};

/* Defaults: delimiter ',', fill NONE, task AUTO, test_fraction 0, seed 0,
 * every source NULL. */
struct kiln_import_options kiln_import_options_default(void);

/* Reads the one source named in opt (IDX, CSV or HDF5; none or several is
 * KILN_ERR_USAGE) into a new in-memory dataset (caller owns), holds out a
 * test split when the source has none and test_fraction > 0, and sets name,
 * source, created and sha256. Errors name the file and, for CSV, the line
 * and column ("data.csv:12:age: missing value"). docs/FORMATS.md details
 * each importer. */
enum kiln_status kiln_data_import(const struct kiln_import_options *opt,
                                  struct kiln_dataset **out);

/* --- chunked reading and writing (bounded memory) ---------------------------- */
/* A reader of feature rows from a kiln dataset split, a plain HDF5 array, or
 * a CSV file of numbers (with a header row), returned as float32 with uint8
 * scaled by 1/255. */
struct kiln_rows_reader;

/* path: .h5/.hdf5 or .csv. For HDF5, array names the dataset inside
 * ("test/X"); NULL picks /test/X, then /X. For CSV, drop_column names a
 * column to skip (e.g. the label), NULL keeps all. */
enum kiln_status kiln_rows_open(const char *path, const char *array, const char *drop_column,
                                struct kiln_rows_reader **out);
/* Rows in the source (-1 for CSV, which is not counted up front). */
int64_t kiln_rows_count(const struct kiln_rows_reader *r);
/* Features per row. */
int64_t kiln_rows_width(const struct kiln_rows_reader *r);
/* The fitted transforms that made these rows (a dataset version made by
 * kiln data transform: its "transforms" attribute, JSON as in
 * kiln_dataset.transforms); NULL for untransformed rows and for CSV.
 * Owned by r. */
const char *kiln_rows_transforms(const struct kiln_rows_reader *r);
/* Reads up to max_rows rows into dst (max_rows * width floats); *got = 0 at
 * the end. A malformed row (CSV text that is not a number, a NaN/Inf in an
 * HDF5 float array) is KILN_ERR_FORMAT naming its row and column. */
enum kiln_status kiln_rows_read(struct kiln_rows_reader *r, int64_t max_rows, float *dst,
                                int64_t *got);
/* Skips the next n rows (HDF5 only: KILN_ERR_USAGE for CSV); skipping past
 * the end leaves the reader at the end. */
enum kiln_status kiln_rows_skip(struct kiln_rows_reader *r, int64_t n);
void kiln_rows_close(struct kiln_rows_reader *r);

/* A writer of predictions to HDF5 (/pred int32 [n] and /prob float32 [n, k]
 * for classifiers, /output float32 [n, k] for regression) or CSV (a header,
 * then pred and one column per class, or output columns). Written to a temp
 * file and renamed into place by kiln_pred_writer_close(commit=true). */
struct kiln_pred_writer;

struct kiln_pred_meta {
    const char *model;          /* model file or name */
    const char *model_sha256;   /* hash of the model file */
    int n_classes;              /* 0 for regression */
    char **classes;             /* may be NULL: then classes are numbered */
    int64_t out_dim;            /* outputs per row: n_classes, or 1 (a sigmoid's
                                 * P(class 1)) when n_classes is 2 */
    /* Recorded as HDF5 attributes when set (kiln score): the registered
     * model's name and version, and the package file's SHA-256. */
    const char *model_name;
    int64_t model_version;      /* 0: not recorded */
    const char *package_sha256;
};

enum kiln_status kiln_pred_writer_open(const char *path, const struct kiln_pred_meta *meta,
                                       struct kiln_pred_writer **out);
/* Appends rows: outputs holds rows * out_dim floats (probabilities for
 * classifiers, which the writer argmaxes into pred). */
enum kiln_status kiln_pred_writer_write(struct kiln_pred_writer *w, const float *outputs,
                                        int64_t rows);
/* A predictions writer whose temp file is tmp (a fixed name, so that it
 * survives a crash) and is kept when closed without commit. resume_rows < 0
 * creates tmp anew (replacing one left over); >= 0 reopens tmp to append
 * after its first resume_rows rows: HDF5 is checked to be written for the
 * same outputs and cut back to those rows (KILN_ERR_FORMAT when it holds
 * fewer or does not open); a CSV tmp must already be cut by the caller to
 * the byte where row resume_rows ends (KILN_ERR_FORMAT unless it ends a
 * line). */
enum kiln_status kiln_pred_writer_open_resumable(const char *path, const char *tmp,
                                                 int64_t resume_rows,
                                                 const struct kiln_pred_meta *meta,
                                                 struct kiln_pred_writer **out);
/* Hands every row written so far to the OS (HDF5: H5Fflush, CSV: fflush),
 * so that it survives the process being killed; sync also fsyncs the file,
 * so that it survives a power loss. */
enum kiln_status kiln_pred_writer_flush(struct kiln_pred_writer *w, bool sync);
/* commit=false (or a failure) removes the temp file unless it is resumable;
 * NULL is fine. */
enum kiln_status kiln_pred_writer_close(struct kiln_pred_writer *w, bool commit);

#endif
