"""Print the HTML report to PDF with WeasyPrint."""

from leukoreport.base.step_log import step_log
from leukoreport.report.render import write_pdf

with step_log(snakemake.log[0]):
    write_pdf(snakemake.input[0], snakemake.output[0])
